//! The one key format of gpunet: **Solana JSON keypair files** — a JSON array of 64 numbers,
//! the ed25519 secret (32 bytes) followed by its public key (32 bytes), as `solana-keygen new`
//! writes them. Users, workers and keepers all read their keys here, so a user's Solana wallet
//! opens keeper sessions and a keeper signs with its bonded on-chain wallet.
//!
//! Key files of gpunet before this format (base58 text of a 32- or 64-byte secret) are refused
//! with [`KeyError::OldFormat`], whose message says how to convert them
//! (`gpunet key convert OLD NEW`, built on [`read_old_format_file`]).
//!
//! This module needs only ed25519-dalek and serde_json, so the keeper and the worker read
//! wallets without linking the Solana SDK.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};

/// Length of a keypair file's array: secret ‖ public.
pub const KEYPAIR_LENGTH: usize = 64;

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file exists and overwriting was not asked for.
    #[error("key file {0} already exists (refusing to overwrite it)")]
    Exists(PathBuf),
    /// A base58 secret: the key format gpunet used before Solana keypair files.
    #[error(
        "{} holds a key in gpunet's old format (base58 text); gpunet now reads Solana JSON \
         keypair files. Convert it with `gpunet key convert {} NEW.json` and use NEW.json",
        .0.display(),
        .0.display()
    )]
    OldFormat(PathBuf),
    /// Not a Solana keypair file.
    #[error("{path} is not a Solana JSON keypair file (a JSON array of 64 bytes): {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The Solana CLI's default keypair: `~/.config/solana/id.json`.
pub fn default_keypair_path() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".config").join("solana").join("id.json")
}

/// Reads a Solana JSON keypair file; checks that its public half matches its secret.
pub fn read_keypair_file(path: impl AsRef<Path>) -> Result<SigningKey, KeyError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    keypair_from_json(&text).map_err(|reason| {
        if is_old_format(&text) {
            KeyError::OldFormat(path.to_path_buf())
        } else {
            KeyError::Invalid {
                path: path.to_path_buf(),
                reason,
            }
        }
    })
}

/// Parses the text of a Solana JSON keypair file.
pub fn keypair_from_json(text: &str) -> Result<SigningKey, String> {
    let bytes: Vec<u8> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let bytes: [u8; KEYPAIR_LENGTH] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("{} bytes, not {KEYPAIR_LENGTH}", b.len()))?;
    SigningKey::from_keypair_bytes(&bytes)
        .map_err(|_| "its public key does not match its secret key".to_string())
}

/// The text of a Solana JSON keypair file for `key` (`[n,n,…]`, as `solana-keygen` writes).
pub fn keypair_to_json(key: &SigningKey) -> String {
    let bytes = key.to_keypair_bytes();
    let items: Vec<String> = bytes.iter().map(u8::to_string).collect();
    format!("[{}]", items.join(","))
}

/// Writes `key` as a Solana JSON keypair file (mode 0600 on Unix), creating parent
/// directories; refuses to replace an existing file unless `overwrite`.
pub fn write_keypair_file(
    path: impl AsRef<Path>,
    key: &SigningKey,
    overwrite: bool,
) -> Result<(), KeyError> {
    let path = path.as_ref();
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists(path.to_path_buf())
        } else {
            io(e)
        }
    })?;
    file.write_all(keypair_to_json(key).as_bytes())
        .map_err(io)?;
    Ok(())
}

/// A fresh random key.
pub fn generate() -> Result<SigningKey, getrandom::Error> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads a key file of gpunet's old format (base58 text of a 32-byte seed or a 64-byte
/// secret ‖ public), for conversion only.
pub fn read_old_format_file(path: impl AsRef<Path>) -> Result<SigningKey, KeyError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |reason: &str| KeyError::Invalid {
        path: path.to_path_buf(),
        reason: format!("not an old-format key either: {reason}"),
    };
    let bytes = bs58::decode(text.trim())
        .into_vec()
        .map_err(|_| invalid("not base58"))?;
    match bytes.len() {
        32 => Ok(SigningKey::from_bytes(
            &bytes.try_into().map_err(|_| invalid("length"))?,
        )),
        64 => SigningKey::from_keypair_bytes(&bytes.try_into().map_err(|_| invalid("length"))?)
            .map_err(|_| invalid("its public key does not match its secret key")),
        n => Err(invalid(&format!("{n} bytes, not 32 or 64"))),
    }
}

fn is_old_format(text: &str) -> bool {
    matches!(bs58::decode(text.trim()).into_vec(), Ok(b) if b.len() == 32 || b.len() == 64)
}

/// The base58 text of a public key (a Solana address).
pub fn pubkey_string(key: &VerifyingKey) -> String {
    bs58::encode(key.as_bytes()).into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_keypair_file_round_trips_in_solana_format() {
        let dir = std::env::temp_dir().join(format!("gpunet-keys-{}", std::process::id()));
        let path = dir.join("k.json");
        let key = SigningKey::from_bytes(&[7; 32]);
        write_keypair_file(&path, &key, true).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let bytes: Vec<u8> = serde_json::from_str(&text).unwrap();
        assert_eq!(bytes.len(), 64);
        assert_eq!(&bytes[..32], &[7; 32]);
        assert_eq!(&bytes[32..], key.verifying_key().as_bytes());
        assert_eq!(read_keypair_file(&path).unwrap().to_bytes(), key.to_bytes());
        assert!(matches!(
            write_keypair_file(&path, &key, false),
            Err(KeyError::Exists(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn test_mismatched_public_half_is_refused() {
        let mut bytes = SigningKey::from_bytes(&[7; 32]).to_keypair_bytes();
        bytes[40] ^= 1;
        let text = serde_json::to_string(&bytes.to_vec()).unwrap();
        assert!(
            keypair_from_json(&text)
                .unwrap_err()
                .contains("does not match")
        );
    }

    #[test]
    fn test_old_format_file_gets_the_conversion_hint() {
        let dir = std::env::temp_dir().join(format!("gpunet-keys-old-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("old.key");
        std::fs::write(&path, bs58::encode([9u8; 32]).into_string()).unwrap();
        let err = read_keypair_file(&path).unwrap_err();
        assert!(matches!(err, KeyError::OldFormat(_)));
        assert!(err.to_string().contains("gpunet key convert"), "{err}");
        let old = read_old_format_file(&path).unwrap();
        assert_eq!(old.to_bytes(), [9u8; 32]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
