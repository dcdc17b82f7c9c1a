//! The instance-id policy.
//!
//! cloud-init runs its once-per-instance modules (users, SSH host keys, packages...) again
//! whenever the seed's `instance-id` changes. So:
//!
//! - **Stable across restarts**: a VM's instance-id is derived from its VM id and a
//!   *provisioning generation* only, never from a clock or a counter of boots.
//! - **Explicit reprovision bumps it**: reprovisioning increments the generation (kept with the
//!   VM's definition), which changes the instance-id, so cloud-init provisions again.
//! - **Regenerating with unchanged content keeps it**: rewriting the seed (for example after a
//!   daemon upgrade) with the same VM id and generation yields the same instance-id, and with
//!   the same files and timestamp the same ISO bytes.
//!
//! Generation 0 (the first provisioning) uses the VM id itself, as the design brief says;
//! generation `n > 0` appends `-r<n>`.

/// The instance-id for `vm_id` at provisioning `generation` (0 for the first provisioning).
pub fn instance_id(vm_id: &str, generation: u32) -> String {
    if generation == 0 {
        vm_id.to_owned()
    } else {
        format!("{vm_id}-r{generation}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        let vm = "0d6b5c3e-8f1a-4c2b-9e7d-1a2b3c4d5e6f";
        assert_eq!(instance_id(vm, 0), vm);
        assert_eq!(instance_id(vm, 0), instance_id(vm, 0), "stable");
        assert_ne!(instance_id(vm, 1), instance_id(vm, 0), "reprovision bumps");
        assert_eq!(instance_id(vm, 2), format!("{vm}-r2"));
    }
}
