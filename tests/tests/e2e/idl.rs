//! The committed IDL (`idl/gpunet.json`, what TypeScript dApps load) matches the program.

#[test]
fn test_committed_idl_is_fresh() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gpunet-idl"))
        .arg("--check")
        .output()
        .expect("run gpunet-idl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
