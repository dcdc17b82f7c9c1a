//! SHA-512 crypt (`$6$`) password hashes, as glibc and libxcrypt write and check them.
//!
//! The salt is 16 characters (12 random bytes in crypt base64), the length glibc uses: with the
//! longer salts some libraries generate, `crypt(pw, hash) != hash` and logins fail. Rounds are
//! the default 5000, so the hash reads `$6$SALT$HASH` like `openssl passwd -6`.

use sha_crypt::{Params, sha512_crypt};

use crate::error::SeedError;

/// The crypt base64 alphabet.
const ALPHABET: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Byte order glibc uses when encoding the 64-byte SHA-512 crypt digest.
const ORDER: [usize; 64] = [
    42, 21, 0, 1, 43, 22, 23, 2, 44, 45, 24, 3, 4, 46, 25, 26, 5, 47, 48, 27, 6, 7, 49, 28, 29, 8,
    50, 51, 30, 9, 10, 52, 31, 32, 11, 53, 54, 33, 12, 13, 55, 34, 35, 14, 56, 57, 36, 15, 16, 58,
    37, 38, 17, 59, 60, 39, 18, 19, 61, 40, 41, 20, 62, 63,
];

/// Hashes `password` with a fresh random 16-character salt.
pub fn hash_password(password: &str) -> Result<String, SeedError> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| SeedError::Random(e.to_string()))?;
    Ok(hash_password_with_salt(password, &encode(&bytes)))
}

/// Hashes `password` with `salt` (at most 16 characters from `./0-9A-Za-z` are used).
pub fn hash_password_with_salt(password: &str, salt: &str) -> String {
    let salt: String = salt.chars().take(16).collect();
    let digest = sha512_crypt(password.as_bytes(), salt.as_bytes(), Params::RECOMMENDED);
    let ordered: Vec<u8> = ORDER.iter().map(|&i| digest[i]).collect();
    format!("$6${salt}${}", encode(&ordered))
}

/// Whether `hash` looks like a SHA-512 crypt hash (`$6$[rounds=N$]SALT$86 chars`).
pub fn is_sha512_crypt(hash: &str) -> bool {
    let Some(rest) = hash.strip_prefix("$6$") else {
        return false;
    };
    let rest = match rest.strip_prefix("rounds=") {
        Some(r) => match r.split_once('$') {
            Some((n, tail)) if n.parse::<u32>().is_ok() => tail,
            _ => return false,
        },
        None => rest,
    };
    let crypt_char = |c: u8| ALPHABET.contains(&c);
    match rest.split_once('$') {
        Some((salt, digest)) => {
            salt.len() <= 16
                && salt.bytes().all(|c| c != b'$' && c != b':' && c != b'\n')
                && digest.len() == 86
                && digest.bytes().all(crypt_char)
        }
        None => false,
    }
}

/// Crypt base64: little-endian groups of three bytes, six bits at a time.
fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut word = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            word |= u32::from(*b) << (8 * i);
        }
        for _ in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(word & 63) as usize]));
            word >>= 6;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_salts_are_16_characters() {
        let hash = hash_password("secret").unwrap();
        let salt = hash.split('$').nth(2).unwrap();
        assert_eq!(salt.len(), 16, "{hash}");
        assert!(is_sha512_crypt(&hash), "{hash}");
        assert_ne!(hash, hash_password("secret").unwrap());
    }

    #[test]
    fn recognises_hashes() {
        assert!(!is_sha512_crypt("secret"));
        assert!(!is_sha512_crypt("$1$abc$def"));
        assert!(is_sha512_crypt(&hash_password_with_salt("x", "abcdefgh")));
    }
}
