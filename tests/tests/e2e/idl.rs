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

/// The SDK's error table (what clients see instead of the dropped log lines) names every error
/// of the program, with the IDL's codes and messages.
#[test]
fn test_sdk_error_table_matches_the_idl() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../idl/gpunet.json");
    let idl: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let errors = idl["errors"].as_array().expect("errors in the IDL");
    assert!(!errors.is_empty());
    for e in errors {
        let code = e["code"].as_u64().unwrap() as u32;
        let found = gpunet_sdk::errors::program_error(code)
            .unwrap_or_else(|| panic!("SDK lacks code {code}"));
        assert_eq!(
            found.name.to_lowercase(),
            e["name"].as_str().unwrap().replace('_', "").to_lowercase()
        );
        assert_eq!(found.message, e["msg"].as_str().unwrap());
    }
    let last = errors
        .iter()
        .map(|e| e["code"].as_u64().unwrap() as u32)
        .max()
        .unwrap();
    assert!(
        gpunet_sdk::errors::program_error(last + 1).is_none(),
        "the SDK knows codes the program does not"
    );
}
