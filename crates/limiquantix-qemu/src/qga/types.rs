//! The typed answers of the guest agent's queries.

use serde::Deserialize;

/// `guest-info`: the agent's version and commands.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GuestInfo {
    /// Agent version.
    pub version: String,
    /// Commands the agent knows.
    #[serde(rename = "supported_commands", default)]
    pub supported_commands: Vec<GuestCommandInfo>,
}

/// One command in [`GuestInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GuestCommandInfo {
    /// Command name.
    pub name: String,
    /// Whether it is enabled.
    #[serde(default)]
    pub enabled: bool,
}

/// `guest-get-osinfo`; every field is optional, as agents report what they know.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestOsInfo {
    /// OS id (`debian`, `ubuntu`, `mswindows`).
    pub id: Option<String>,
    /// OS name.
    pub name: Option<String>,
    /// Human-readable name with version.
    pub pretty_name: Option<String>,
    /// Version string.
    pub version: Option<String>,
    /// Version id.
    pub version_id: Option<String>,
    /// Kernel release (`uname -r`).
    pub kernel_release: Option<String>,
    /// Kernel version (`uname -v`).
    pub kernel_version: Option<String>,
    /// Machine (`x86_64`).
    pub machine: Option<String>,
}

/// One interface from `guest-network-get-interfaces`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestInterface {
    /// Interface name.
    pub name: String,
    /// MAC address, when it has one.
    #[serde(default)]
    pub hardware_address: Option<String>,
    /// Addresses.
    #[serde(default)]
    pub ip_addresses: Vec<GuestIpAddress>,
}

/// One address of a [`GuestInterface`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestIpAddress {
    /// `ipv4` or `ipv6` (kept as text so an unknown kind is not an error).
    pub ip_address_type: String,
    /// The address.
    pub ip_address: String,
    /// Prefix length.
    #[serde(default)]
    pub prefix: u8,
}

/// `guest-exec-status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecStatus {
    /// Whether the process has exited.
    pub exited: bool,
    /// Exit code, once exited normally.
    pub exit_code: Option<i64>,
    /// Terminating signal, once killed by one.
    pub signal: Option<i64>,
    /// Captured standard output (decoded from base64).
    pub stdout: Vec<u8>,
    /// Captured standard error (decoded from base64).
    pub stderr: Vec<u8>,
    /// Whether the agent truncated the output.
    pub truncated: bool,
    /// Whether the agent truncated standard output.
    pub stdout_truncated: bool,
    /// Whether the agent truncated standard error.
    pub stderr_truncated: bool,
}
