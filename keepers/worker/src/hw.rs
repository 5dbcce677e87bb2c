//! GPU discovery through cudarc, with a declared (CPU-only) mode for tests and demos.

use gpunet_proto::v1 as pb;

/// What the worker found or was told.
#[derive(Clone, Debug)]
pub struct Hardware {
    /// GPUs (indices are CUDA ordinals).
    pub gpus: Vec<pb::Gpu>,
    /// True when the GPUs are declared rather than discovered.
    pub cpu_only: bool,
    /// How discovery went, for logs.
    pub note: String,
}

/// Declared GPUs for CPU-only mode.
#[derive(Clone, Debug)]
pub struct DeclaredGpus {
    /// How many.
    pub count: u32,
    /// Model name reported.
    pub model: String,
    /// Memory per GPU in bytes.
    pub memory_bytes: u64,
}

/// Discover GPUs with the CUDA driver. Never panics: cudarc panics when the driver library is
/// missing, so its presence is checked first and any panic is caught.
pub fn discover() -> Result<Vec<pb::Gpu>, String> {
    // SAFETY: only probes whether the shared library can be loaded.
    let present = unsafe { cudarc::driver::sys::is_culib_present() };
    if !present {
        return Err("no CUDA driver library (libcuda) found".into());
    }
    std::panic::catch_unwind(|| -> Result<Vec<pb::Gpu>, String> {
        let n = cudarc::driver::CudaContext::device_count().map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for i in 0..n.max(0) {
            let ctx = cudarc::driver::CudaContext::new(i as usize).map_err(|e| e.to_string())?;
            out.push(pb::Gpu {
                index: i as u32,
                model: ctx.name().map_err(|e| e.to_string())?,
                memory_bytes: ctx.total_mem().map_err(|e| e.to_string())? as u64,
            });
        }
        Ok(out)
    })
    .map_err(|_| "CUDA driver panicked during discovery".to_string())?
}

/// Discover, or fall back to declared GPUs (CPU-only mode, which says so everywhere).
pub fn hardware(declared: Option<&DeclaredGpus>) -> Hardware {
    if let Some(d) = declared {
        return Hardware {
            gpus: (0..d.count.min(64))
                .map(|i| pb::Gpu {
                    index: i,
                    model: d.model.clone(),
                    memory_bytes: d.memory_bytes,
                })
                .collect(),
            cpu_only: true,
            note: format!(
                "CPU-only mode: {} declared GPU(s) of model {:?}, not discovered",
                d.count, d.model
            ),
        };
    }
    match discover() {
        Ok(gpus) => Hardware {
            note: format!("discovered {} GPU(s)", gpus.len()),
            gpus,
            cpu_only: false,
        },
        Err(e) => Hardware {
            gpus: Vec::new(),
            cpu_only: true,
            note: format!("CPU-only mode: {e}"),
        },
    }
}
