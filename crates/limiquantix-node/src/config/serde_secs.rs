//! Durations written as whole seconds in the printed configuration.

/// Serialises `d` as whole seconds.
pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}
