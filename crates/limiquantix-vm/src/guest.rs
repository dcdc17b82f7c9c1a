//! What a VM's guest agent answers.

/// What a VM's guest agent answered to a ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPing {
    /// Whether the agent answered.
    pub connected: bool,
    /// The agent's version, when it answered.
    pub version: String,
    /// Why it did not answer, for people.
    pub error: String,
}

/// What a VM's guest agent says about the guest (qemu-guest-agent's `guest-info`,
/// `guest-get-host-name`, `guest-get-osinfo`, `guest-network-get-interfaces`). Anything the
/// agent does not report is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestFacts {
    /// The agent's version.
    pub agent_version: String,
    /// Commands the agent has enabled.
    pub capabilities: Vec<String>,
    /// The guest's host name.
    pub hostname: String,
    /// OS name (`Debian GNU/Linux`).
    pub os_name: String,
    /// OS version (`12 (bookworm)`).
    pub os_version: String,
    /// Kernel release (`6.1.0-26-amd64`).
    pub kernel_release: String,
    /// Network interfaces, loopback included, in the agent's order.
    pub interfaces: Vec<GuestNic>,
}

/// One network interface inside the guest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestNic {
    /// Interface name (`eth0`, `enp0s3`).
    pub name: String,
    /// MAC address, when it has one.
    pub mac: String,
    /// Addresses with their prefix lengths.
    pub addresses: Vec<(std::net::IpAddr, u8)>,
}
