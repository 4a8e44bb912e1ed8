//! Which vector instructions the kernels use, detected once at run time.

use std::sync::OnceLock;

/// The instruction set a kernel runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512 F/BW with VNNI (x86-64 since Ice Lake / Zen 4).
    Avx512,
    /// AVX2 with FMA (x86-64 since Haswell / Zen 1): the lane-wise loops compiled for it.
    Avx2,
    /// Lane-wise loops for the build's baseline target.
    Portable,
}

impl Isa {
    /// The best instruction set this processor offers (cached).
    pub fn detect() -> Self {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(detect_now)
    }

    /// Every instruction set this processor can run, best first (for tests and benchmarks).
    pub fn available() -> Vec<Self> {
        [Self::Avx512, Self::Avx2, Self::Portable]
            .into_iter()
            .filter(|isa| *isa as u8 >= Self::detect() as u8)
            .collect()
    }

    /// Short name for logs and benchmark tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512 => "avx512",
            Self::Avx2 => "avx2",
            Self::Portable => "portable",
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn detect_now() -> Isa {
    if std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vnni")
    {
        Isa::Avx512
    } else if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
    {
        Isa::Avx2
    } else {
        Isa::Portable
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_now() -> Isa {
    Isa::Portable
}

/// Defines `fn $name(args) -> ret` that runs the `#[inline(always)]` function `$body` compiled
/// for the widest vector instructions the processor has (AVX-512, else AVX2 with FMA, else the
/// build's baseline), so plain lane-wise loops in `$body` are vectorised to that width.
macro_rules! with_widest_vectors {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $body:path;) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                match $crate::kernels::Isa::detect() {
                    // SAFETY: `Isa::detect` found these instructions on this processor.
                    $crate::kernels::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::kernels::Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::kernels::Isa::Portable => {}
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use with_widest_vectors;
