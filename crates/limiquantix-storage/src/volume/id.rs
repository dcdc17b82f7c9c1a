//! Volume ids and snapshot names.

use crate::error::StorageError;

/// A valid volume id: 1 to 64 letters, digits, `.`, `_` and `-`, not starting with `.` (so a
/// control plane's UUID is one, and `/`, `..` and hidden files are not).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VolumeId(String);

impl VolumeId {
    /// Checks `value`, the request field `field`.
    pub fn parse(field: &str, value: &str) -> Result<Self, StorageError> {
        check_volume_name(field, value)?;
        Ok(Self(value.to_string()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for VolumeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a volume id or snapshot name (same rule as [`VolumeId`]).
pub fn check_volume_name(field: &str, value: &str) -> Result<(), StorageError> {
    if limiquantix_vm::model::is_plain_name(value) {
        Ok(())
    } else {
        Err(StorageError::BadName {
            field: field.to_string(),
            value: value.chars().take(80).collect(),
        })
    }
}
