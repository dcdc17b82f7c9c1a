//! Confinement of host paths named in requests.
//!
//! Every host path a request names (a disk's `backing_file` or `path`, a CD-ROM's `iso_path`)
//! must be absolute, free of `..`, and resolve — after every symlink — to a regular file inside
//! one of the allowed roots: the configured storage pools and the images directory. The resolved
//! path is what the daemon uses from then on, so a symlink swapped after the check changes nothing.
//!
//! A path outside every root is refused as `PERMISSION_DENIED` whether or not it exists, so the
//! answer reveals nothing about files outside the roots; a missing path inside a root is
//! `INVALID_ARGUMENT`. Canonicalisation touches the filesystem: call from blocking context.

use std::path::{Component, Path, PathBuf};

/// Why a requested path is refused. Each variant names the request field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfineError {
    /// Not an absolute path, or contains `..` or a NUL byte.
    #[error("{field}: {path:?} is not allowed: {problem}")]
    Malformed {
        /// The request field.
        field: String,
        /// The path given.
        path: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// Resolves (after symlinks) outside every allowed root.
    #[error(
        "{field}: {path:?} is outside the allowed directories (the images directory and the storage pools: {allowed})"
    )]
    Outside {
        /// The request field.
        field: String,
        /// The path given.
        path: String,
        /// The allowed roots, for the message.
        allowed: String,
    },
    /// Inside a root, but does not exist.
    #[error("{field}: {path:?} does not exist")]
    Missing {
        /// The request field.
        field: String,
        /// The path given.
        path: String,
    },
    /// A directory other than the one allowed for the field (`inside`: it is below that one).
    #[error("{field}: {path:?} is not allowed: use {allowed} (or leave it empty for the same)")]
    WrongDir {
        /// The request field.
        field: String,
        /// The path given.
        path: String,
        /// The one directory allowed.
        allowed: String,
        /// Whether the path is inside the allowed directory (a subdirectory).
        inside: bool,
    },
    /// Exists inside a root, but is not a regular file.
    #[error("{field}: {path:?} is not a regular file")]
    NotAFile {
        /// The request field.
        field: String,
        /// The path given.
        path: String,
    },
}

/// Checks that directory `path` (request field `field`) is `dir` itself, after symlinks: for a
/// request that may only write into `dir`. Canonicalisation touches the filesystem: call from
/// blocking context.
pub fn check_is_dir(field: &str, path: &str, dir: &Path) -> Result<(), ConfineError> {
    let malformed = |problem| ConfineError::Malformed {
        field: field.into(),
        path: path.into(),
        problem,
    };
    let p = Path::new(path);
    if path.contains('\0') {
        return Err(malformed("it contains a NUL byte"));
    }
    if !p.is_absolute() {
        return Err(malformed("it must be an absolute path"));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(malformed("it must not contain `..`"));
    }
    let canonical_dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let inside = match std::fs::canonicalize(p) {
        Ok(resolved) if resolved == canonical_dir => return Ok(()),
        Ok(resolved) => resolved.starts_with(&canonical_dir),
        Err(_) => p.starts_with(dir) || p.starts_with(&canonical_dir),
    };
    Err(ConfineError::WrongDir {
        field: field.into(),
        path: path.into(),
        allowed: dir.display().to_string(),
        inside,
    })
}

/// The allowed roots of host paths.
#[derive(Debug, Clone)]
pub struct Confinement {
    roots: Vec<PathBuf>,
}

impl Confinement {
    /// Allows the images directory and the pool directories (they need not exist yet).
    pub fn new(images_dir: &Path, pools: impl IntoIterator<Item = PathBuf>) -> Self {
        let mut roots = vec![images_dir.to_path_buf()];
        roots.extend(pools);
        Self { roots }
    }

    /// The roots as configured.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    fn canonical_roots(&self) -> Vec<PathBuf> {
        self.roots
            .iter()
            .filter_map(|r| std::fs::canonicalize(r).ok())
            .collect()
    }

    fn allowed_list(&self) -> String {
        self.roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checks `path` (from request field `field`) and returns its resolved location.
    pub fn check(&self, field: &str, path: &str) -> Result<PathBuf, ConfineError> {
        let malformed = |problem| ConfineError::Malformed {
            field: field.into(),
            path: path.into(),
            problem,
        };
        if path.contains('\0') {
            return Err(malformed("it contains a NUL byte"));
        }
        let p = Path::new(path);
        if !p.is_absolute() {
            return Err(malformed("it must be an absolute path"));
        }
        if p.components().any(|c| c == Component::ParentDir) {
            return Err(malformed("it must not contain `..`"));
        }
        let roots = self.canonical_roots();
        let outside = || ConfineError::Outside {
            field: field.into(),
            path: path.into(),
            allowed: self.allowed_list(),
        };
        match std::fs::canonicalize(p) {
            Ok(resolved) => {
                if !roots
                    .iter()
                    .any(|r| resolved.starts_with(r) && &resolved != r)
                {
                    return Err(outside());
                }
                let meta = std::fs::metadata(&resolved).map_err(|_| outside())?;
                if !meta.is_file() {
                    return Err(ConfineError::NotAFile {
                        field: field.into(),
                        path: path.into(),
                    });
                }
                Ok(resolved)
            }
            Err(_) => {
                // Say "missing" only when the path is lexically inside a root, so nothing is
                // revealed about the rest of the filesystem.
                let inside = self
                    .roots
                    .iter()
                    .chain(roots.iter())
                    .any(|r| p.starts_with(r));
                if inside {
                    Err(ConfineError::Missing {
                        field: field.into(),
                        path: path.into(),
                    })
                } else {
                    Err(outside())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
        confinement: Confinement,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let images = root.join("images");
        let pool = root.join("pool");
        let elsewhere = root.join("elsewhere");
        for d in [&images, &pool, &elsewhere] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(images.join("base.qcow2"), b"x").unwrap();
        std::fs::write(pool.join("disk.raw"), b"x").unwrap();
        std::fs::write(elsewhere.join("secret"), b"x").unwrap();
        std::fs::create_dir(images.join("sub")).unwrap();
        let confinement = Confinement::new(&images, [pool]);
        Fixture {
            _dir: dir,
            root,
            confinement,
        }
    }

    fn check(f: &Fixture, rel: &str) -> Result<PathBuf, ConfineError> {
        f.confinement.check(
            "spec.disks[0].backing_file",
            &f.root.join(rel).display().to_string(),
        )
    }

    #[test]
    fn files_in_images_and_pools_are_allowed() {
        let f = fixture();
        assert_eq!(
            check(&f, "images/base.qcow2").unwrap(),
            f.root.join("images/base.qcow2")
        );
        assert_eq!(
            check(&f, "pool/disk.raw").unwrap(),
            f.root.join("pool/disk.raw")
        );
    }

    #[test]
    fn etc_shadow_is_refused_as_outside() {
        let f = fixture();
        let err = f
            .confinement
            .check("spec.disks[0].backing_file", "/etc/shadow")
            .unwrap_err();
        assert!(matches!(err, ConfineError::Outside { .. }), "{err}");
        assert!(
            err.to_string().starts_with("spec.disks[0].backing_file:"),
            "{err}"
        );
    }

    #[test]
    fn missing_outside_is_still_outside() {
        let f = fixture();
        let err = f.confinement.check("f", "/etc/no-such-file").unwrap_err();
        assert!(matches!(err, ConfineError::Outside { .. }), "{err}");
        let err = check(&f, "images/no-such.qcow2").unwrap_err();
        assert!(matches!(err, ConfineError::Missing { .. }), "{err}");
    }

    #[test]
    fn dot_dot_is_refused_even_when_it_lands_inside() {
        let f = fixture();
        for rel in ["images/../elsewhere/secret", "images/sub/../base.qcow2"] {
            let err = check(&f, rel).unwrap_err();
            assert!(
                matches!(err, ConfineError::Malformed { .. }),
                "{rel}: {err}"
            );
        }
    }

    #[test]
    fn symlink_escaping_a_root_is_refused() {
        let f = fixture();
        symlink(
            f.root.join("elsewhere/secret"),
            f.root.join("images/escape.qcow2"),
        )
        .unwrap();
        symlink("/etc/shadow", f.root.join("pool/shadow")).unwrap();
        symlink(f.root.join("elsewhere"), f.root.join("images/dirlink")).unwrap();
        for rel in [
            "images/escape.qcow2",
            "pool/shadow",
            "images/dirlink/secret",
        ] {
            let err = check(&f, rel).unwrap_err();
            assert!(matches!(err, ConfineError::Outside { .. }), "{rel}: {err}");
        }
    }

    #[test]
    fn only_the_directory_itself_passes_check_is_dir() {
        let f = fixture();
        let images = f.root.join("images");
        symlink(&images, f.root.join("images-link")).unwrap();
        symlink(f.root.join("elsewhere"), images.join("out")).unwrap();
        let check =
            |p: &std::path::Path| check_is_dir("target_dir", &p.display().to_string(), &images);
        check(&images).unwrap();
        check(&f.root.join("images-link")).unwrap();
        for (rel, inside) in [
            ("images/sub", true),
            ("images/absent", true),
            ("elsewhere", false),
            ("images/out", false),
            ("nowhere/x", false),
        ] {
            match check(&f.root.join(rel)).unwrap_err() {
                ConfineError::WrongDir { inside: i, .. } => assert_eq!(i, inside, "{rel}"),
                e => panic!("{rel}: {e}"),
            }
        }
        for bad in ["images", "/x/../images", "/x\0"] {
            let e = check_is_dir("target_dir", bad, &images).unwrap_err();
            assert!(matches!(e, ConfineError::Malformed { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn symlink_inside_a_root_resolves_to_its_target() {
        let f = fixture();
        symlink(
            f.root.join("images/base.qcow2"),
            f.root.join("pool/link.qcow2"),
        )
        .unwrap();
        assert_eq!(
            check(&f, "pool/link.qcow2").unwrap(),
            f.root.join("images/base.qcow2")
        );
    }

    #[test]
    fn relative_nul_directories_and_roots_are_refused() {
        let f = fixture();
        let c = &f.confinement;
        assert!(matches!(
            c.check("f", "images/base.qcow2"),
            Err(ConfineError::Malformed { .. })
        ));
        assert!(matches!(
            c.check("f", "/a\0b"),
            Err(ConfineError::Malformed { .. })
        ));
        assert!(matches!(
            check(&f, "images/sub"),
            Err(ConfineError::NotAFile { .. })
        ));
        assert!(matches!(
            check(&f, "images"),
            Err(ConfineError::Outside { .. })
        ));
    }

    #[test]
    fn a_missing_root_allows_nothing() {
        let c = Confinement::new(Path::new("/nonexistent/images"), []);
        assert!(matches!(
            c.check("f", "/etc/passwd"),
            Err(ConfineError::Outside { .. })
        ));
        assert!(matches!(
            c.check("f", "/nonexistent/images/x"),
            Err(ConfineError::Missing { .. })
        ));
    }
}
