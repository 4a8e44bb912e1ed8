//! Thin helpers over `hdf5-metno` for the element types AnnData files contain: strings in
//! every HDF5 flavour, numeric arrays with conversion, attributes, and fields of the
//! compound (structured) datasets that anndata < 0.7 wrote.

use hdf5::types::{
    CompoundField, CompoundType, FloatSize, IntSize, TypeDescriptor, VarLenAscii, VarLenUnicode,
};
use hdf5::{Container, Dataset, Datatype, Location};
use hdf5_metno as hdf5;

/// A message-only error from this layer; callers attach the file path.
pub type HdfResult<T> = std::result::Result<T, String>;

fn msg(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Reads the raw bytes of a container in its own file datatype (no conversion).
fn raw_bytes(container: &Container, dtype: &Datatype, is_attr: bool) -> HdfResult<Vec<u8>> {
    use hdf5_metno_sys::{h5a::H5Aread, h5d::H5Dread, h5p::H5P_DEFAULT, h5s::H5S_ALL};
    let len = container.size() * dtype.size();
    let mut buf = vec![0u8; len];
    let status = hdf5::sync::sync(|| unsafe {
        if is_attr {
            H5Aread(container.id(), dtype.id(), buf.as_mut_ptr().cast())
        } else {
            H5Dread(
                container.id(),
                dtype.id(),
                H5S_ALL,
                H5S_ALL,
                H5P_DEFAULT,
                buf.as_mut_ptr().cast(),
            )
        }
    });
    if status < 0 {
        return Err(format!("cannot read {}", container.name()));
    }
    Ok(buf)
}

/// Reads elements `[start, start + out.len())` of a 1-D numeric dataset straight into `out`,
/// converted by HDF5 to `T` (no intermediate buffer).
pub fn read_range_into<T: hdf5::H5Type + Copy>(
    ds: &Dataset,
    start: usize,
    out: &mut [T],
) -> HdfResult<()> {
    use hdf5::Dataspace;
    use hdf5_metno_sys::{h5d::H5Dread, h5p::H5P_DEFAULT};
    if out.is_empty() {
        return Ok(());
    }
    let file_space = ds
        .space()
        .and_then(|s| s.select(start..start + out.len()))
        .map_err(msg)?;
    let mem_space = Dataspace::try_new(out.len()).map_err(msg)?;
    let mem_type = Datatype::from_type::<T>().map_err(msg)?;
    let status = hdf5::sync::sync(|| unsafe {
        // SAFETY: `out` holds exactly as many `T` as the memory space selects, and `T` is a
        // plain numeric type for which HDF5 writes valid values.
        H5Dread(
            ds.id(),
            mem_type.id(),
            mem_space.id(),
            file_space.id(),
            H5P_DEFAULT,
            out.as_mut_ptr().cast(),
        )
    });
    if status < 0 {
        return Err(format!(
            "cannot read entries {start}..{} of {}",
            start + out.len(),
            ds.name()
        ));
    }
    Ok(())
}

/// Splits fixed-length string records, dropping NUL padding.
fn split_fixed(bytes: &[u8], width: usize) -> Vec<String> {
    if width == 0 {
        return Vec::new();
    }
    bytes
        .chunks(width)
        .map(|c| {
            let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
            String::from_utf8_lossy(&c[..end]).trim_end().to_string()
        })
        .collect()
}

/// Reads every element of a string dataset, whatever its string flavour. Numeric datasets are
/// formatted as text (anndata allows integer indices).
pub fn read_strings(ds: &Dataset) -> HdfResult<Vec<String>> {
    strings_of(ds, false)
}

fn strings_of(container: &Container, is_attr: bool) -> HdfResult<Vec<String>> {
    let dtype = container.dtype().map_err(msg)?;
    match dtype.to_descriptor().map_err(msg)? {
        TypeDescriptor::VarLenUnicode => Ok(container
            .read_raw::<VarLenUnicode>()
            .map_err(msg)?
            .into_iter()
            .map(|s| s.as_str().to_string())
            .collect()),
        TypeDescriptor::VarLenAscii => Ok(container
            .read_raw::<VarLenAscii>()
            .map_err(msg)?
            .into_iter()
            .map(|s| s.as_str().to_string())
            .collect()),
        TypeDescriptor::FixedAscii(w) | TypeDescriptor::FixedUnicode(w) => {
            Ok(split_fixed(&raw_bytes(container, &dtype, is_attr)?, w))
        }
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => Ok(container
            .read_raw::<i64>()
            .map_err(msg)?
            .iter()
            .map(i64::to_string)
            .collect()),
        TypeDescriptor::Float(_) => Ok(container
            .read_raw::<f64>()
            .map_err(msg)?
            .iter()
            .map(f64::to_string)
            .collect()),
        other => Err(format!("{} holds {other:?}, not text", container.name())),
    }
}

/// Reads a scalar (or first element of a) string attribute, if present.
pub fn attr_string(loc: &Location, name: &str) -> Option<String> {
    let attr = loc.attr(name).ok()?;
    strings_of(&attr, true).ok()?.into_iter().next()
}

/// Reads a string-array attribute (e.g. `column-order`), if present.
pub fn attr_strings(loc: &Location, name: &str) -> Option<Vec<String>> {
    let attr = loc.attr(name).ok()?;
    strings_of(&attr, true).ok()
}

/// Reads a numeric attribute as `f64` values (e.g. `shape`, `h5sparse_shape`).
pub fn attr_numbers(loc: &Location, name: &str) -> Option<Vec<f64>> {
    let attr = loc.attr(name).ok()?;
    attr.read_raw::<f64>().ok()
}

/// Whether a dataset's elements are strings of any flavour.
pub fn is_string(ds: &Dataset) -> bool {
    ds.dtype().and_then(|t| t.to_descriptor()).is_ok_and(|d| {
        matches!(
            d,
            TypeDescriptor::VarLenUnicode
                | TypeDescriptor::VarLenAscii
                | TypeDescriptor::FixedAscii(_)
                | TypeDescriptor::FixedUnicode(_)
        )
    })
}

/// Whether a dataset's elements are booleans (HDF5 enum of FALSE/TRUE, as h5py writes them).
pub fn is_bool(ds: &Dataset) -> bool {
    ds.dtype()
        .and_then(|t| t.to_descriptor())
        .is_ok_and(|d| matches!(d, TypeDescriptor::Boolean) || is_bool_enum(&d))
}

fn is_bool_enum(d: &TypeDescriptor) -> bool {
    match d {
        TypeDescriptor::Enum(e) => {
            e.members.len() == 2
                && e.members
                    .iter()
                    .all(|m| m.name == "FALSE" || m.name == "TRUE")
        }
        _ => false,
    }
}

/// Reads a boolean dataset.
pub fn read_bools(ds: &Dataset) -> HdfResult<Vec<bool>> {
    let dtype = ds.dtype().map_err(msg)?;
    let bytes = raw_bytes(ds, &dtype, false)?;
    let w = dtype.size().max(1);
    Ok(bytes.chunks(w).map(|c| c.iter().any(|&b| b != 0)).collect())
}

/// A short name of a numeric dtype ("f32", "i64", ...), or the descriptor for others.
pub fn dtype_name(ds: &Dataset) -> String {
    match ds.dtype().and_then(|t| t.to_descriptor()) {
        Ok(TypeDescriptor::Float(s)) => format!("f{}", s as usize * 8),
        Ok(TypeDescriptor::Integer(s)) => format!("i{}", s as usize * 8),
        Ok(TypeDescriptor::Unsigned(s)) => format!("u{}", s as usize * 8),
        Ok(TypeDescriptor::Boolean) => "bool".into(),
        Ok(d) if is_bool_enum(&d) => "bool".into(),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("unknown ({e})"),
    }
}

/// Whether a dataset holds numbers (integers or floats).
pub fn is_numeric(ds: &Dataset) -> bool {
    matches!(
        ds.dtype().and_then(|t| t.to_descriptor()),
        Ok(TypeDescriptor::Float(_) | TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_))
    )
}

/// The fields of a compound dataset: name and descriptor.
pub fn compound_fields(ds: &Dataset) -> Option<Vec<(String, TypeDescriptor)>> {
    match ds.dtype().and_then(|t| t.to_descriptor()) {
        Ok(TypeDescriptor::Compound(c)) => {
            Some(c.fields.into_iter().map(|f| (f.name, f.ty)).collect())
        }
        _ => None,
    }
}

/// Reads one field of a compound dataset converted to `ty`, as raw native bytes per element.
fn compound_field_bytes(
    ds: &Dataset,
    field: &str,
    ty: TypeDescriptor,
) -> HdfResult<(Vec<u8>, usize)> {
    use hdf5_metno_sys::{h5d::H5Dread, h5p::H5P_DEFAULT, h5s::H5S_ALL};
    let size = ty.size();
    let mem = Datatype::from_descriptor(&TypeDescriptor::Compound(CompoundType {
        fields: vec![CompoundField::new(field, ty, 0, 0)],
        size,
    }))
    .map_err(msg)?;
    let mut buf = vec![0u8; ds.size() * size];
    let status = hdf5::sync::sync(|| unsafe {
        H5Dread(
            ds.id(),
            mem.id(),
            H5S_ALL,
            H5S_ALL,
            H5P_DEFAULT,
            buf.as_mut_ptr().cast(),
        )
    });
    if status < 0 {
        return Err(format!("cannot read field {field} of {}", ds.name()));
    }
    Ok((buf, size))
}

/// Reads a numeric compound field (scalar or fixed array per record) as `f64`, flattened.
pub fn compound_field_f64(ds: &Dataset, field: &str, width: usize) -> HdfResult<Vec<f64>> {
    let ty = if width <= 1 {
        TypeDescriptor::Float(FloatSize::U8)
    } else {
        TypeDescriptor::FixedArray(Box::new(TypeDescriptor::Float(FloatSize::U8)), width)
    };
    let (bytes, _) = compound_field_bytes(ds, field, ty)?;
    Ok(bytes
        .chunks_exact(8)
        .map(|c| f64::from_ne_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

/// Reads an integer compound field as `i64`.
pub fn compound_field_i64(ds: &Dataset, field: &str) -> HdfResult<Vec<i64>> {
    let (bytes, _) = compound_field_bytes(ds, field, TypeDescriptor::Integer(IntSize::U8))?;
    Ok(bytes
        .chunks_exact(8)
        .map(|c| i64::from_ne_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

/// Reads a fixed-length string compound field.
pub fn compound_field_strings(ds: &Dataset, field: &str, width: usize) -> HdfResult<Vec<String>> {
    let (bytes, w) = compound_field_bytes(ds, field, TypeDescriptor::FixedAscii(width))?;
    Ok(split_fixed(&bytes, w))
}

/// Reads a boolean compound field.
pub fn compound_field_bools(ds: &Dataset, field: &str, ty: TypeDescriptor) -> HdfResult<Vec<bool>> {
    let (bytes, w) = compound_field_bytes(ds, field, ty)?;
    Ok(bytes
        .chunks(w.max(1))
        .map(|c| c.iter().any(|&b| b != 0))
        .collect())
}

/// Whether a descriptor is a boolean (native or h5py's enum).
pub fn descriptor_is_bool(d: &TypeDescriptor) -> bool {
    matches!(d, TypeDescriptor::Boolean) || is_bool_enum(d)
}

/// How to open an HDF5 file.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Read only.
    Read,
    /// Read and write an existing file.
    ReadWrite,
    /// Create (truncate).
    Create,
}

/// Opens an HDF5 file without HDF5's advisory file lock.
///
/// The lock is taken with `flock` on a descriptor that HDF5 opens without close-on-exec, so any
/// child process started meanwhile inherits it and keeps the file locked for its lifetime. We
/// never write files in place (outputs are new files renamed into place), so the lock adds no
/// safety and only causes spurious "unable to lock file" failures.
pub fn open_file(path: &std::path::Path, mode: Mode) -> hdf5::Result<hdf5::File> {
    let mut builder = hdf5::File::with_options();
    builder.with_fapl(|p| p.file_locking(false));
    match mode {
        Mode::Read => builder.open(path),
        Mode::ReadWrite => builder.open_rw(path),
        Mode::Create => builder.create(path),
    }
}
