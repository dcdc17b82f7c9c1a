//! The node id the control plane assigned, kept in `<state>/control-plane.json` (written
//! atomically) so it is known across restarts, before the next registration answers.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file's name inside the state directory.
pub const FILE_NAME: &str = "control-plane.json";

/// What the file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Saved {
    /// The control plane that assigned the id.
    control_plane: String,
    /// The id.
    node_id: String,
}

/// The file of `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// The id saved for the control plane at `url`, if any (blocking). An id another control plane
/// assigned is not this one's; a damaged file is logged and ignored.
pub fn load(state_dir: &Path, url: &str) -> Option<String> {
    let file = path(state_dir);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "cannot read the saved node id");
            return None;
        }
    };
    match serde_json::from_str::<Saved>(&text) {
        Ok(saved) if saved.control_plane == url && !saved.node_id.is_empty() => Some(saved.node_id),
        Ok(saved) => {
            tracing::info!(
                saved_for = %saved.control_plane,
                "the saved node id belongs to another control plane; registering anew"
            );
            None
        }
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "ignoring a damaged node id file");
            None
        }
    }
}

/// Saves the id assigned by the control plane at `url` (blocking).
pub fn save(state_dir: &Path, url: &str, node_id: &str) -> Result<(), limiquantix_fs::FsError> {
    let saved = Saved {
        control_plane: url.to_string(),
        node_id: node_id.to_string(),
    };
    let mut bytes = serde_json::to_vec_pretty(&saved).unwrap_or_default();
    bytes.push(b'\n');
    limiquantix_fs::write_atomic(&path(state_dir), &bytes, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_kept_for_its_control_plane_only() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load(d.path(), "http://cp:8080"), None);
        save(d.path(), "http://cp:8080", "n-1").unwrap();
        assert_eq!(load(d.path(), "http://cp:8080").as_deref(), Some("n-1"));
        assert_eq!(load(d.path(), "http://other:8080"), None);
        std::fs::write(path(d.path()), "{not json").unwrap();
        assert_eq!(load(d.path(), "http://cp:8080"), None);
    }
}
