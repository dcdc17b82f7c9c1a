//! The default user-data for VMs made from cloud images.
//!
//! What it configures: the hostname (and FQDN when given), one user (default `admin`) with
//! passwordless sudo and the given SSH keys, password login off unless a password is given (kept
//! only as a SHA-512 crypt hash), the `qemu-guest-agent` package installed and started, and no
//! package upgrade. It is emitted through serde (serde-saphyr, YAML 1.1-safe quoting), never by
//! joining strings, so any operator string reads back unchanged with PyYAML `safe_load`.

use std::fmt;

use serde::Serialize;

use crate::error::{SeedError, ValidationError};
use crate::password;
use crate::validate::hostname::{validate_fqdn, validate_hostname};

/// The user the default user-data creates unless told otherwise.
pub const DEFAULT_USER: &str = "admin";

/// The guest agent package the default user-data installs and starts.
pub const GUEST_AGENT_PACKAGE: &str = "qemu-guest-agent";

/// Builder of the default `#cloud-config` user-data.
#[derive(Clone, PartialEq, Eq)]
pub struct DefaultUserData {
    hostname: String,
    fqdn: Option<String>,
    user: String,
    ssh_authorized_keys: Vec<String>,
    password_hash: Option<String>,
    packages: Vec<String>,
    timezone: Option<String>,
}

impl fmt::Debug for DefaultUserData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultUserData")
            .field("hostname", &self.hostname)
            .field("fqdn", &self.fqdn)
            .field("user", &self.user)
            .field("ssh_authorized_keys", &self.ssh_authorized_keys.len())
            .field("password", &self.password_hash.as_ref().map(|_| "<hash>"))
            .field("packages", &self.packages)
            .field("timezone", &self.timezone)
            .finish()
    }
}

impl DefaultUserData {
    /// Default user-data for a VM called `hostname`: user `admin`, no keys, no password,
    /// packages `[qemu-guest-agent]`, no FQDN or time zone.
    pub fn new(hostname: impl Into<String>) -> Self {
        Self {
            hostname: hostname.into(),
            fqdn: None,
            user: DEFAULT_USER.to_owned(),
            ssh_authorized_keys: Vec::new(),
            password_hash: None,
            packages: vec![GUEST_AGENT_PACKAGE.to_owned()],
            timezone: None,
        }
    }

    /// The host name this user-data sets.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// Sets the fully qualified domain name.
    pub fn fqdn(mut self, fqdn: impl Into<String>) -> Self {
        self.fqdn = Some(fqdn.into());
        self
    }

    /// Sets the name of the user to create.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = user.into();
        self
    }

    /// Adds one SSH public key (one `authorized_keys` line).
    pub fn ssh_key(mut self, key: impl Into<String>) -> Self {
        self.ssh_authorized_keys.push(key.into());
        self
    }

    /// Adds SSH public keys.
    pub fn ssh_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.ssh_authorized_keys
            .extend(keys.into_iter().map(Into::into));
        self
    }

    /// Allows password login with `password`, hashed here with SHA-512 crypt and a random
    /// 16-character salt; the plain text is not kept.
    pub fn password(mut self, password: &str) -> Result<Self, SeedError> {
        self.password_hash = Some(password::hash_password(password)?);
        Ok(self)
    }

    /// Allows password login with an existing SHA-512 crypt hash (`$6$...`).
    pub fn password_hash(mut self, hash: impl Into<String>) -> Self {
        self.password_hash = Some(hash.into());
        self
    }

    /// Replaces the package list (default `[qemu-guest-agent]`).
    pub fn packages<I, S>(mut self, packages: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.packages = packages.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the time zone (e.g. `Europe/Paris`).
    pub fn timezone(mut self, timezone: impl Into<String>) -> Self {
        self.timezone = Some(timezone.into());
        self
    }

    /// Checks every field; the error names the field and what is allowed.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_hostname(&self.hostname)?;
        if let Some(fqdn) = &self.fqdn {
            validate_fqdn(fqdn)?;
        }
        validate_user_name(&self.user)?;
        for (i, key) in self.ssh_authorized_keys.iter().enumerate() {
            validate_ssh_key(key).map_err(|e| e.at_path(format!("ssh_authorized_keys.{i}")))?;
        }
        if let Some(hash) = &self.password_hash
            && !password::is_sha512_crypt(hash)
        {
            return Err(ValidationError::new(
                "password",
                "the password hash is not a SHA-512 crypt hash",
                "`$6$SALT$HASH` as written by `openssl passwd -6`",
            ));
        }
        for package in &self.packages {
            validate_token(
                "package",
                package,
                "a Debian/RPM package name, optionally `=VERSION`",
                |c| c.is_ascii_alphanumeric() || "+-.:=~_".contains(c),
            )?;
        }
        if let Some(tz) = &self.timezone {
            validate_token(
                "timezone",
                tz,
                "a tz database name such as `Europe/Paris` or `UTC`",
                |c| c.is_ascii_alphanumeric() || "+-_/".contains(c),
            )?;
        }
        Ok(())
    }

    /// The user-data document: `#cloud-config` and the YAML body. Does not validate: call
    /// [`DefaultUserData::validate`] first for operator input.
    pub fn to_yaml(&self) -> Result<Vec<u8>, SeedError> {
        let has_agent = self
            .packages
            .iter()
            .any(|p| p == GUEST_AGENT_PACKAGE || p.starts_with(&format!("{GUEST_AGENT_PACKAGE}=")));
        let config = CloudConfig {
            hostname: &self.hostname,
            fqdn: self.fqdn.as_deref(),
            manage_etc_hosts: true,
            users: vec![User {
                name: &self.user,
                sudo: "ALL=(ALL) NOPASSWD:ALL",
                shell: "/bin/bash",
                lock_passwd: self.password_hash.is_none(),
                hashed_passwd: self.password_hash.as_deref(),
                ssh_authorized_keys: &self.ssh_authorized_keys,
            }],
            ssh_pwauth: self.password_hash.is_some(),
            disable_root: true,
            package_upgrade: false,
            packages: &self.packages,
            timezone: self.timezone.as_deref(),
            runcmd: if has_agent {
                vec![vec![
                    "sh",
                    "-c",
                    "systemctl enable --now qemu-guest-agent || systemctl start qemu-guest-agent",
                ]]
            } else {
                Vec::new()
            },
        };
        let mut out = b"#cloud-config\n".to_vec();
        out.extend_from_slice(emit_yaml(&config)?.as_bytes());
        Ok(out)
    }
}

/// Emits `value` as YAML that PyYAML (YAML 1.1) reads back unchanged: strings that YAML 1.1
/// would read as something else are quoted, and strings with line breaks are double-quoted
/// with escapes rather than written as block scalars.
pub fn emit_yaml<T: Serialize>(value: &T) -> Result<String, SeedError> {
    let options = serde_saphyr::ser_options! {
        prefer_block_scalars: false,
    };
    serde_saphyr::to_string_with_options(value, options).map_err(|e| SeedError::Emit(e.to_string()))
}

#[derive(Serialize)]
struct CloudConfig<'a> {
    hostname: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fqdn: Option<&'a str>,
    manage_etc_hosts: bool,
    users: Vec<User<'a>>,
    ssh_pwauth: bool,
    disable_root: bool,
    package_upgrade: bool,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    packages: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    timezone: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    runcmd: Vec<Vec<&'a str>>,
}

#[derive(Serialize)]
struct User<'a> {
    name: &'a str,
    sudo: &'a str,
    shell: &'a str,
    lock_passwd: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    hashed_passwd: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    ssh_authorized_keys: &'a [String],
}

/// A POSIX user name as `useradd` accepts by default: 1 to 32 characters, a lowercase letter or
/// `_` first, then lowercase letters, digits, `_` and `-`.
pub fn validate_user_name(name: &str) -> Result<(), ValidationError> {
    let mut chars = name.chars();
    let ok = (1..=32).contains(&name.len())
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "user",
            format!("{name:?} is not a valid user name"),
            "1 to 32 characters: a lowercase letter or `_`, then lowercase letters, digits, `_`, `-`",
        ))
    }
}

/// One `authorized_keys` line: not empty, no line breaks or NUL.
pub fn validate_ssh_key(key: &str) -> Result<(), ValidationError> {
    let allowed = "one public key line such as `ssh-ed25519 AAAA... comment`";
    if key.trim().is_empty() {
        return Err(ValidationError::new("ssh key", "the key is empty", allowed));
    }
    if key.contains(['\n', '\r', '\0']) {
        return Err(ValidationError::new(
            "ssh key",
            "the key spans several lines",
            allowed,
        ));
    }
    Ok(())
}

fn validate_token(
    field: &str,
    value: &str,
    allowed: &str,
    ok: impl Fn(char) -> bool,
) -> Result<(), ValidationError> {
    if !value.is_empty() && value.len() <= 255 && value.chars().all(ok) {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("{value:?} is not a valid {field}"),
            allowed,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emits_the_expected_document() {
        let yaml = DefaultUserData::new("web1")
            .ssh_key("ssh-ed25519 AAAAC3Nza test@host")
            .password_hash(password::hash_password_with_salt("pw", "saltsaltsaltsalt"))
            .to_yaml()
            .unwrap();
        let text = String::from_utf8(yaml).unwrap();
        assert!(
            text.starts_with("#cloud-config\nhostname: web1\n"),
            "{text}"
        );
        assert!(text.contains("lock_passwd: false"), "{text}");
        assert!(text.contains("ssh_pwauth: true"), "{text}");
        assert!(text.contains("package_upgrade: false"), "{text}");
        assert!(text.contains("- qemu-guest-agent"), "{text}");
    }

    #[test]
    fn validation_names_the_field() {
        let e = DefaultUserData::new("web_1").validate().unwrap_err();
        assert_eq!(e.file, "hostname");
        let e = DefaultUserData::new("web1")
            .user("Admin")
            .validate()
            .unwrap_err();
        assert_eq!(e.file, "user");
        let e = DefaultUserData::new("web1")
            .ssh_key("a\nb")
            .validate()
            .unwrap_err();
        assert_eq!(e.path.as_deref(), Some("ssh_authorized_keys.0"));
        let e = DefaultUserData::new("web1")
            .password_hash("plain")
            .validate()
            .unwrap_err();
        assert_eq!(e.file, "password");
        assert!(
            DefaultUserData::new("web1")
                .timezone("Europe/Paris")
                .validate()
                .is_ok()
        );
        assert!(
            format!("{:?}", DefaultUserData::new("a").password("pw").unwrap()).contains("<hash>")
        );
    }
}
