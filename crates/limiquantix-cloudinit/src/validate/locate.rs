//! Where cloud-init's cloud-config schema is installed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the schema lives relative to the `cloudinit` Python package.
pub const SCHEMA_RELATIVE_PATH: &str = "config/schemas/schema-cloud-config-v1.json";

/// Places the Debian/Ubuntu and Fedora packages install cloud-init.
const WELL_KNOWN_PACKAGE_DIRS: &[&str] = &[
    "/usr/lib/python3/dist-packages/cloudinit",
    "/usr/lib/python3/site-packages/cloudinit",
];

/// Finds cloud-init's schema: `LQ_CLOUD_INIT_SCHEMA` when set, the well-known package
/// directories, then the directory Python reports for `import cloudinit`
/// (`python3 -c 'import cloudinit, os; print(os.path.dirname(cloudinit.__file__))'`, trying
/// `/usr/bin/python3` and then `python3` on `PATH`).
pub fn locate_schema() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("LQ_CLOUD_INIT_SCHEMA") {
        return Some(PathBuf::from(path));
    }
    for dir in WELL_KNOWN_PACKAGE_DIRS {
        let path = Path::new(dir).join(SCHEMA_RELATIVE_PATH);
        if path.is_file() {
            return Some(path);
        }
    }
    for python in ["/usr/bin/python3", "python3"] {
        let Ok(out) = Command::new(python)
            .args([
                "-c",
                "import cloudinit, os; print(os.path.dirname(cloudinit.__file__))",
            ])
            .output()
        else {
            continue;
        };
        if out.status.success() {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            let path = Path::new(&dir).join(SCHEMA_RELATIVE_PATH);
            if path.is_file() {
                return Some(path);
            }
        }
    }
    None
}
