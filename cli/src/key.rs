//! `gpunet key generate|pubkey|convert`, and the one place the CLI reads keypair files.
//!
//! One key format for everyone — users, workers, keepers: Solana JSON keypair files (a JSON
//! array of 64 bytes, secret ‖ public), read and written by `gpunet_sdk::task::keys`. A key file
//! of gpunet's old format (base58 text) is refused with the command that converts it.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use clap::Subcommand;
use gpunet_sdk::task::SigningKey;
use gpunet_sdk::task::keys::{self, KeyError};
use serde_json::json;
use solana_sdk::signature::Keypair;

use crate::Global;
use crate::output;

/// `gpunet key …`
#[derive(Subcommand)]
pub enum KeyCmd {
    /// Write a new Solana JSON keypair file and print its public key (the wallet address).
    Generate {
        /// Where to write it [default: --keypair, or ~/.config/solana/id.json].
        path: Option<PathBuf>,
        /// The same as PATH.
        #[arg(long, conflicts_with = "path")]
        out: Option<PathBuf>,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Print the public key of a keypair file [default: --keypair].
    Pubkey {
        /// Keypair file.
        path: Option<PathBuf>,
    },
    /// Convert a key file of gpunet's old format (base58 secret) to a Solana JSON keypair file.
    Convert {
        /// The old key file.
        old: PathBuf,
        /// The keypair file to write.
        new: PathBuf,
        /// Replace NEW if it exists.
        #[arg(long)]
        force: bool,
    },
}

/// Reads the keypair file at `path`; a missing file or an old-format one gets a sentence that
/// says what to do.
pub fn load(path: &Path) -> Result<SigningKey> {
    keys::read_keypair_file(path).map_err(|e| match e {
        KeyError::Io { source, .. } => anyhow!(
            "cannot read keypair {}: {source} (create one with `gpunet key generate {}` or \
             `solana-keygen new`; `gpunet localnet` creates the default one)",
            path.display(),
            path.display()
        ),
        other => anyhow!(other),
    })
}

/// The same key as a Solana SDK keypair (to sign transactions).
pub fn to_solana(key: &SigningKey) -> Keypair {
    Keypair::new_from_array(key.to_bytes())
}

/// `gpunet key …`
pub fn run(g: &Global, cmd: KeyCmd) -> Result<()> {
    let (path, key) = match cmd {
        KeyCmd::Generate { path, out, force } => {
            let path = path.or(out).unwrap_or_else(|| g.keypair_path());
            let key = keys::generate().map_err(|e| anyhow!("randomness: {e}"))?;
            keys::write_keypair_file(&path, &key, force)?;
            (path, key)
        }
        KeyCmd::Pubkey { path } => {
            let path = path.unwrap_or_else(|| g.keypair_path());
            let key = load(&path)?;
            (path, key)
        }
        KeyCmd::Convert { old, new, force } => {
            let key = keys::read_old_format_file(&old)?;
            keys::write_keypair_file(&new, &key, force)?;
            (new, key)
        }
    };
    let pubkey = keys::pubkey_string(&key.verifying_key());
    let v = json!({"pubkey": pubkey, "keypair": path.display().to_string()});
    output::print(g.output, v, || println!("{pubkey}"));
    Ok(())
}
