//! ONNX external data: tensor bytes kept in a file beside the model
//! (`TensorProto.data_location = EXTERNAL`, `external_data` entries `location`,
//! `offset`, `length`; what `torch.onnx.export(..., external_data=True)` and
//! `onnx.save(..., save_as_external_data=True)` write).
//!
//! Rules (the ONNX spec makes `location` a path relative to the model's
//! directory; a model file is untrusted input, so this is enforced strictly):
//!
//! * `location` must be a relative path with no `..` component (and no NUL);
//!   after resolving symbolic links it must still lie inside the model's
//!   directory, and be a regular file;
//! * `offset` (default 0) and `length` (default: the rest of the file) are
//!   decimal byte counts; `offset + length` must lie within the file;
//! * `length` must equal what the tensor's type and dims need;
//! * all external tensors of a model together read at most
//!   [`MAX_EXTERNAL_BYTES`].

use onnx_protobuf::StringStringEntryProto;
use std::cell::Cell;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

/// Most bytes read from external data files for one model.
pub const MAX_EXTERNAL_BYTES: u64 = 1 << 31;

/// Why the external data of a tensor could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExternalDataError {
    /// The model was given as bytes only, with no directory to resolve
    /// `location` against.
    #[error("its data is in an external file, but the model was given without a directory (load it from a file, or use import_onnx_with_base)")]
    NoBaseDirectory,
    #[error("data_location is EXTERNAL but no 'location' entry is given")]
    MissingLocation,
    /// An entry is repeated, or `offset`/`length` is not a decimal byte count.
    #[error("external_data entry '{key}' = '{value}' is invalid (repeated, or not a decimal byte count)")]
    BadEntry { key: String, value: String },
    #[error("data_location is EXTERNAL but the tensor also has inline data")]
    InlineAndExternal,
    #[error("external data location '{location}' is an absolute path; it must be relative to the model's directory")]
    AbsolutePath { location: String },
    #[error("external data location '{location}' contains a '..' component")]
    ParentDir { location: String },
    /// Empty, or a NUL byte.
    #[error("external data location '{location}' is not a file name")]
    BadLocation { location: String },
    /// `location` resolves (through symbolic links) outside the model's directory.
    #[error(
        "external data location '{location}' resolves to {resolved}, outside the model's directory"
    )]
    OutsideModelDir { location: String, resolved: PathBuf },
    #[error("external data file {path}: {error}")]
    Io {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("external data location {path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("external data range offset {offset} + length {length} exceeds the {file_len}-byte file {path}")]
    OutOfRange {
        path: PathBuf,
        offset: u64,
        length: u64,
        file_len: u64,
    },
    #[error("external data has {got} bytes, the tensor's type and dims need {expected}")]
    LengthMismatch { expected: u64, got: u64 },
    #[error("external data of the model exceeds {limit} bytes in total")]
    TooLarge { limit: u64 },
}

/// Resolves and reads external data inside one directory, within a byte budget.
#[derive(Debug)]
pub(crate) struct ExternalDir {
    dir: PathBuf,
    /// Bytes read so far, and the most allowed ([`MAX_EXTERNAL_BYTES`]).
    used: Cell<u64>,
    limit: u64,
}

/// The parsed `external_data` entries of a tensor.
struct Reference<'a> {
    location: &'a str,
    offset: u64,
    length: Option<u64>,
}

fn parse_entries(entries: &[StringStringEntryProto]) -> Result<Reference<'_>, ExternalDataError> {
    let (mut location, mut offset, mut length) = (None, None, None);
    for e in entries {
        let bad = || ExternalDataError::BadEntry {
            key: e.key.clone(),
            value: e.value.clone(),
        };
        let number = || -> Result<u64, ExternalDataError> {
            if e.value.is_empty() || !e.value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            e.value.parse::<u64>().map_err(|_| bad())
        };
        let slot_taken = match e.key.as_str() {
            "location" => location.replace(e.value.as_str()).is_some(),
            "offset" => offset.replace(number()?).is_some(),
            "length" => length.replace(number()?).is_some(),
            // `checksum` (and anything else) is not needed to read the data.
            _ => false,
        };
        if slot_taken {
            return Err(bad());
        }
    }
    Ok(Reference {
        location: location.ok_or(ExternalDataError::MissingLocation)?,
        offset: offset.unwrap_or(0),
        length,
    })
}

/// Check `location` lexically: relative, no `..`, no root or prefix, no NUL.
fn check_location(location: &str) -> Result<&Path, ExternalDataError> {
    let owned = || location.to_string();
    if location.is_empty() || location.contains('\0') {
        return Err(ExternalDataError::BadLocation { location: owned() });
    }
    let p = Path::new(location);
    // Also catch a leading '/' or '\' on any platform.
    if p.is_absolute() || p.has_root() || location.starts_with(['/', '\\']) {
        return Err(ExternalDataError::AbsolutePath { location: owned() });
    }
    for c in p.components() {
        match c {
            Component::ParentDir => return Err(ExternalDataError::ParentDir { location: owned() }),
            Component::RootDir | Component::Prefix(_) => {
                return Err(ExternalDataError::AbsolutePath { location: owned() })
            }
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    // Windows-style separators are not separators here, but a '..' between them
    // would be one there: refuse it everywhere.
    if location.split(['/', '\\']).any(|part| part == "..") {
        return Err(ExternalDataError::ParentDir { location: owned() });
    }
    Ok(p)
}

impl ExternalDir {
    pub(crate) fn new(dir: &Path) -> ExternalDir {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        ExternalDir {
            dir: dir.to_path_buf(),
            used: Cell::new(0),
            limit: MAX_EXTERNAL_BYTES,
        }
    }

    /// Read the `expected` bytes `entries` point at.
    pub(crate) fn read(
        &self,
        entries: &[StringStringEntryProto],
        expected: u64,
    ) -> Result<Vec<u8>, ExternalDataError> {
        let r = parse_entries(entries)?;
        let rel = check_location(r.location)?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |error| ExternalDataError::Io { path, error }
        };
        let dir = self.dir.canonicalize().map_err(io(&self.dir))?;
        let joined = dir.join(rel);
        let path = joined.canonicalize().map_err(io(&joined))?;
        if !path.starts_with(&dir) {
            return Err(ExternalDataError::OutsideModelDir {
                location: r.location.to_string(),
                resolved: path,
            });
        }
        // Look before opening: opening a FIFO or a device could block or act.
        if !std::fs::metadata(&path).map_err(io(&path))?.is_file() {
            return Err(ExternalDataError::NotAFile { path });
        }
        let mut file = std::fs::File::open(&path).map_err(io(&path))?;
        let meta = file.metadata().map_err(io(&path))?;
        if !meta.is_file() {
            return Err(ExternalDataError::NotAFile { path });
        }
        let file_len = meta.len();
        let length = match r.length {
            Some(l) => l,
            None => file_len.saturating_sub(r.offset),
        };
        if r.offset
            .checked_add(length)
            .is_none_or(|end| end > file_len)
        {
            return Err(ExternalDataError::OutOfRange {
                path,
                offset: r.offset,
                length,
                file_len,
            });
        }
        if length != expected {
            return Err(ExternalDataError::LengthMismatch {
                expected,
                got: length,
            });
        }
        let used = self
            .used
            .get()
            .checked_add(length)
            .filter(|&u| u <= self.limit)
            .ok_or(ExternalDataError::TooLarge { limit: self.limit })?;
        self.used.set(used);
        file.seek(SeekFrom::Start(r.offset)).map_err(io(&path))?;
        let len = usize::try_from(length)
            .map_err(|_| ExternalDataError::TooLarge { limit: self.limit })?;
        let mut buf = vec![0u8; len];
        file.read_exact(&mut buf).map_err(io(&path))?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(k: &str, v: &str) -> StringStringEntryProto {
        let mut e = StringStringEntryProto::new();
        e.key = k.into();
        e.value = v.into();
        e
    }

    #[test]
    fn locations() {
        assert!(check_location("w.bin").is_ok());
        assert!(check_location("sub/w.bin").is_ok());
        assert!(check_location("./w.bin").is_ok());
        for bad in ["../w.bin", "a/../../w.bin", "a\\..\\w.bin", ".."] {
            assert!(
                matches!(
                    check_location(bad),
                    Err(ExternalDataError::ParentDir { .. })
                ),
                "{bad}"
            );
        }
        for bad in ["/etc/passwd", "\\w.bin"] {
            assert!(
                matches!(
                    check_location(bad),
                    Err(ExternalDataError::AbsolutePath { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            check_location(""),
            Err(ExternalDataError::BadLocation { .. })
        ));
    }

    #[test]
    fn total_budget() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/onnx");
        let name = "conv_relu_linear_dynamo18_external.onnx.data";
        let refs = |off: &str, len: &str| {
            vec![
                entry("location", name),
                entry("offset", off),
                entry("length", len),
            ]
        };
        let mut ext = ExternalDir::new(&dir);
        ext.limit = 300;
        assert_eq!(ext.read(&refs("0", "288"), 288).unwrap().len(), 288);
        // 288 + 16 > 300: refused before reading.
        assert!(matches!(
            ext.read(&refs("0", "16"), 16),
            Err(ExternalDataError::TooLarge { limit: 300 })
        ));
        assert_eq!(ext.read(&refs("0", "12"), 12).unwrap().len(), 12);
    }

    #[test]
    fn entries() {
        let ok = [entry("location", "w"), entry("offset", "8")];
        let r = parse_entries(&ok).unwrap();
        assert_eq!((r.location, r.offset, r.length), ("w", 8, None));
        for bad in [
            vec![entry("location", "w"), entry("offset", "-1")],
            vec![entry("location", "w"), entry("length", "1e3")],
            vec![
                entry("location", "w"),
                entry("length", "99999999999999999999"),
            ],
            vec![entry("location", "w"), entry("location", "v")],
        ] {
            assert!(matches!(
                parse_entries(&bad),
                Err(ExternalDataError::BadEntry { .. })
            ));
        }
        assert!(matches!(
            parse_entries(&[entry("offset", "0")]),
            Err(ExternalDataError::MissingLocation)
        ));
    }
}
