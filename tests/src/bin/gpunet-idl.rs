//! Builds gpunet's Anchor IDL without anchor-cli, from anchor-lang's own IDL build.
//!
//! `gpunet-idl` prints it; `gpunet-idl --write` updates `idl/gpunet.json`; `gpunet-idl --check`
//! fails when the committed file is stale (the e2e suite runs this).
//!
//! The build runs `cargo test __anchor_private_print_idl --features idl-build` in the program's
//! folder, in its own target directory (`target/idl`: other RUSTFLAGS would otherwise rebuild
//! the main target). `RUSTUP_TOOLCHAIN` is removed first: with it set, the builder asks rustup to
//! install a toolchain and passes a literal `+{toolchain}` to cargo (docs/toolchain.md).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    // SAFETY: single-threaded here, before anything reads the environment.
    unsafe {
        std::env::remove_var("RUSTUP_TOOLCHAIN");
        std::env::set_var("CARGO_TARGET_DIR", root.join("target").join("idl"));
    }
    let idl = match anchor_lang_idl::build::IdlBuilder::new()
        .program_path(root.join("programs").join("gpunet"))
        .build()
    {
        Ok(idl) => idl,
        Err(e) => {
            eprintln!("gpunet-idl: building the IDL failed: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let json = match serde_json::to_string_pretty(&idl) {
        Ok(j) => j + "\n",
        Err(e) => {
            eprintln!("gpunet-idl: {e}");
            return ExitCode::FAILURE;
        }
    };
    let path = root.join("idl").join("gpunet.json");
    match std::env::args().nth(1).as_deref() {
        None => {
            print!("{json}");
            ExitCode::SUCCESS
        }
        Some("--write") => match std::fs::write(&path, &json) {
            Ok(()) => {
                eprintln!("gpunet-idl: wrote {}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("gpunet-idl: writing {}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
        Some("--check") => {
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            if committed == json {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "gpunet-idl: {} is stale; run `cargo run -p gpunet-tests --bin gpunet-idl -- --write`",
                    path.display()
                );
                ExitCode::FAILURE
            }
        }
        Some(other) => {
            eprintln!("gpunet-idl: unknown argument {other:?} (use --write or --check)");
            ExitCode::from(2)
        }
    }
}
