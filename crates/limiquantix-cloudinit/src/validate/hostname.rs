//! Host names (RFC 1123) and fully qualified domain names.

use crate::error::ValidationError;

const HOSTNAME_ALLOWED: &str = "1 to 63 characters from a-z A-Z 0-9 and `-`, not starting or \
                                ending with `-` (RFC 1123)";

/// Checks a host name: one RFC 1123 label (1 to 63 letters, digits and hyphens, no hyphen at
/// either end). Dots are refused: give a domain as the FQDN.
pub fn validate_hostname(hostname: &str) -> Result<(), ValidationError> {
    label_problem(hostname).map_or(Ok(()), |problem| {
        Err(ValidationError::new(
            "hostname",
            format!("{hostname:?} {problem}"),
            HOSTNAME_ALLOWED,
        ))
    })
}

/// Checks a fully qualified domain name: dot-separated RFC 1123 labels, at most 253
/// characters, an optional trailing dot.
pub fn validate_fqdn(fqdn: &str) -> Result<(), ValidationError> {
    let allowed = "dot-separated labels of 1 to 63 characters from a-z A-Z 0-9 and `-`, \
                   at most 253 characters in all";
    let name = fqdn.strip_suffix('.').unwrap_or(fqdn);
    if name.is_empty() || name.len() > 253 {
        return Err(ValidationError::new(
            "fqdn",
            format!("{fqdn:?} is empty or longer than 253 characters"),
            allowed,
        ));
    }
    for label in name.split('.') {
        if let Some(problem) = label_problem(label) {
            return Err(ValidationError::new(
                "fqdn",
                format!("label {label:?} of {fqdn:?} {problem}"),
                allowed,
            ));
        }
    }
    Ok(())
}

fn label_problem(label: &str) -> Option<&'static str> {
    if label.is_empty() {
        Some("is empty")
    } else if label.len() > 63 {
        Some("is longer than 63 characters")
    } else if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Some("holds a character other than letters, digits and `-`")
    } else if label.starts_with('-') || label.ends_with('-') {
        Some("starts or ends with `-`")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1123() {
        for ok in ["web1", "a", "0755", "1e3", "yes", "Web-01", &"x".repeat(63)] {
            assert!(validate_hostname(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a_b", "a.b", "é", "a b", &"x".repeat(64)] {
            let e = validate_hostname(bad).unwrap_err();
            assert!(e.to_string().contains("RFC 1123"), "{e}");
        }
        assert!(validate_fqdn("web1.example.com.").is_ok());
        assert!(validate_fqdn("web1..com").is_err());
        assert!(validate_fqdn(&format!("{}.com", "a.".repeat(130))).is_err());
    }
}
