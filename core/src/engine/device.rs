//! Run-time backend selection: CUDA when a driver and a GPU are present, else wgpu when an adapter
//! exists, else the Flex CPU backend. Drivers are probed *before* any Burn device is created,
//! because burn-cuda 0.21 panics in a device thread when `libcuda` is missing and cubecl-wgpu
//! panics when no adapter exists.

use burn::backend::wgpu::graphics::{AutoGraphicsApi, GraphicsApi};
use std::fmt;
use std::str::FromStr;

/// What the user asked for (`--device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceRequest {
    /// Best available: CUDA, then a hardware wgpu adapter, then the CPU (a software Vulkan
    /// such as lavapipe is slower than the Flex CPU backend, so only `wgpu` selects it).
    #[default]
    Auto,
    /// NVIDIA CUDA.
    Cuda,
    /// wgpu (Vulkan / Metal / DX12).
    Wgpu,
    /// The Flex CPU backend.
    Cpu,
}

impl FromStr for DeviceRequest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cuda" | "gpu" => Ok(Self::Cuda),
            "wgpu" | "vulkan" | "metal" => Ok(Self::Wgpu),
            "cpu" | "flex" => Ok(Self::Cpu),
            other => Err(format!(
                "unknown device `{other}`; use auto, cuda, wgpu or cpu"
            )),
        }
    }
}

/// The backend actually used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// NVIDIA CUDA (device 0).
    Cuda,
    /// wgpu default adapter.
    Wgpu,
    /// Flex CPU backend.
    Cpu,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cuda => "cuda",
            Self::Wgpu => "wgpu",
            Self::Cpu => "cpu",
        })
    }
}

/// The outcome of device selection, with the reasons for any fallback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSelection {
    /// The chosen backend.
    pub kind: DeviceKind,
    /// Human-readable description (adapter or GPU name where known).
    pub description: String,
    /// Why a requested or better backend was not used.
    pub notes: Vec<String>,
}

/// Picks a backend for `request`, probing drivers without creating any Burn device.
pub fn select_device(request: DeviceRequest) -> DeviceSelection {
    let mut notes = Vec::new();
    if matches!(request, DeviceRequest::Auto | DeviceRequest::Cuda) {
        match probe_cuda() {
            Ok(count) => {
                return DeviceSelection {
                    kind: DeviceKind::Cuda,
                    description: format!("CUDA device 0 of {count}"),
                    notes,
                };
            }
            Err(why) => {
                if request == DeviceRequest::Cuda {
                    notes.push(format!("CUDA unavailable ({why}); falling back"));
                }
            }
        }
    }
    if matches!(
        request,
        DeviceRequest::Auto | DeviceRequest::Cuda | DeviceRequest::Wgpu
    ) {
        match probe_wgpu() {
            // A software rasteriser (lavapipe, llvmpipe) is slower than the Flex CPU backend:
            // `auto` only takes a hardware adapter; `--device wgpu` takes any.
            Ok(adapter) if adapter.software && request == DeviceRequest::Auto => {}
            Ok(adapter) => {
                return DeviceSelection {
                    kind: DeviceKind::Wgpu,
                    description: format!("wgpu adapter {}", adapter.name),
                    notes,
                };
            }
            Err(why) => {
                if request != DeviceRequest::Auto {
                    notes.push(format!("wgpu unavailable ({why}); falling back to the CPU"));
                }
            }
        }
    }
    DeviceSelection {
        kind: DeviceKind::Cpu,
        description: format!(
            "CPU (Flex, {} threads)",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        ),
        notes,
    }
}

/// Loads the CUDA driver library and asks it for devices. Returns the device count.
pub fn probe_cuda() -> Result<usize, String> {
    let (lib, name) = cuda_driver()?;
    type CuDeviceGetCount = unsafe extern "C" fn(*mut i32) -> i32;
    // SAFETY: `cuDeviceGetCount(int*)` is the driver API's, called after `cuInit`.
    let count = unsafe {
        let count_fn: libloading::Symbol<CuDeviceGetCount> = lib
            .get(b"cuDeviceGetCount\0")
            .map_err(|e| format!("{name}: {e}"))?;
        let mut count = 0i32;
        let code = count_fn(&mut count);
        if code != 0 {
            return Err(format!("cuDeviceGetCount failed with CUDA error {code}"));
        }
        count
    };
    if count <= 0 {
        return Err("the CUDA driver reports no devices".into());
    }
    // Keep the driver loaded for the process lifetime, as cudarc will load it again.
    std::mem::forget(lib);
    Ok(count as usize)
}

/// Total memory of CUDA device 0 in bytes (the device the engine loads onto), from the driver;
/// `None` when the driver cannot say. Needs no context, so it allocates nothing on the device.
pub fn cuda_total_memory() -> Option<u64> {
    let (lib, _) = cuda_driver().ok()?;
    type CuDeviceGet = unsafe extern "C" fn(*mut i32, i32) -> i32;
    type CuDeviceTotalMem = unsafe extern "C" fn(*mut usize, i32) -> i32;
    // SAFETY: `cuDeviceGet(CUdevice*, int)` and `cuDeviceTotalMem_v2(size_t*, CUdevice)` are
    // the driver API's, called after `cuInit`.
    let bytes = unsafe {
        let get: libloading::Symbol<CuDeviceGet> = lib.get(b"cuDeviceGet\0").ok()?;
        let total: libloading::Symbol<CuDeviceTotalMem> = lib.get(b"cuDeviceTotalMem_v2\0").ok()?;
        let mut device = 0i32;
        if get(&mut device, 0) != 0 {
            return None;
        }
        let mut bytes = 0usize;
        if total(&mut bytes, device) != 0 {
            return None;
        }
        bytes
    };
    std::mem::forget(lib);
    Some(bytes as u64)
}

/// The CUDA driver library, loaded and initialised (`cuInit(0)`), with the name it was found
/// under.
fn cuda_driver() -> Result<(libloading::Library, &'static str), String> {
    #[cfg(target_os = "windows")]
    const NAMES: &[&str] = &["nvcuda.dll"];
    #[cfg(not(target_os = "windows"))]
    const NAMES: &[&str] = &["libcuda.so.1", "libcuda.so"];
    #[cfg(target_os = "macos")]
    return Err("CUDA does not exist on macOS".into());
    #[allow(unreachable_code)]
    {
        let mut last = String::from("no CUDA driver library found");
        for name in NAMES {
            // SAFETY: loading the system CUDA driver runs its initialisers, which is what any
            // CUDA program does.
            let lib = match unsafe { libloading::Library::new(name) } {
                Ok(lib) => lib,
                Err(e) => {
                    last = format!("cannot load {name}: {e}");
                    continue;
                }
            };
            type CuInit = unsafe extern "C" fn(u32) -> i32;
            // SAFETY: `cuInit(0)` is the driver API's first call.
            let code = unsafe {
                let init: libloading::Symbol<CuInit> =
                    lib.get(b"cuInit\0").map_err(|e| format!("{name}: {e}"))?;
                init(0)
            };
            if code != 0 {
                return Err(format!("cuInit failed with CUDA error {code}"));
            }
            return Ok((lib, name));
        }
        Err(last)
    }
}

/// A wgpu adapter found by [`probe_wgpu`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgpuAdapter {
    /// Name, graphics API and device type.
    pub name: String,
    /// Whether it is a CPU (software) implementation such as Mesa's lavapipe.
    pub software: bool,
}

/// Looks for a wgpu adapter on the graphics API that Burn's wgpu backend uses on this platform,
/// preferring hardware adapters.
pub fn probe_wgpu() -> Result<WgpuAdapter, String> {
    let backend = AutoGraphicsApi::backend();
    let backends = wgpu::Backends::from(backend);
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    let info = adapters
        .iter()
        .map(|a| a.get_info())
        .max_by_key(|i| match i.device_type {
            wgpu::DeviceType::DiscreteGpu => 4,
            wgpu::DeviceType::IntegratedGpu => 3,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Cpu => 1,
            wgpu::DeviceType::Other => 0,
        })
        .ok_or_else(|| format!("no {backend:?} adapter found"))?;
    Ok(WgpuAdapter {
        name: format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type),
        software: info.device_type == wgpu::DeviceType::Cpu,
    })
}
