//! Reading the contract files from disk. Parsing lives with the types in `model` (text in,
//! value or error out); opening a file is I/O, so it is here.

use std::path::Path;

use crate::model::expectations::{Expectations, ExpectationsError};
use crate::model::snapshot::{Snapshot, SnapshotError};

impl Expectations {
    /// Reads and validates the expectations file `path` (errors name it, with line and
    /// column).
    pub fn load(path: &Path) -> Result<Self, ExpectationsError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ExpectationsError::Read { file: path.to_path_buf(), source })?;
        Self::from_toml_str(&text, Some(path))
    }
}

impl Snapshot {
    /// Reads and validates a snapshot file.
    pub fn load(path: &Path) -> Result<Self, SnapshotError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| SnapshotError::Read { file: path.to_path_buf(), source })?;
        Self::from_json_str(&text, path)
    }
}
