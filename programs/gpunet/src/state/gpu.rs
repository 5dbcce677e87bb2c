//! GPU classes and what a provider offers.

use anchor_lang::prelude::*;

/// Number of [`GpuClass`] variants; the length of per-class tables in [`crate::state::Config`].
pub const GPU_CLASS_COUNT: usize = 8;
/// Most GPUs one provider account may offer.
pub const MAX_GPUS_PER_PROVIDER: u16 = 1024;

/// A class of GPU. Minimum stake and expected benchmark throughput are set per class.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub enum GpuClass {
    H200,
    H100,
    A100,
    L40S,
    A10,
    Rtx4090,
    Rtx3090,
    Other,
}

impl GpuClass {
    /// Every class, in table order.
    pub const ALL: [GpuClass; GPU_CLASS_COUNT] = [
        GpuClass::H200,
        GpuClass::H100,
        GpuClass::A100,
        GpuClass::L40S,
        GpuClass::A10,
        GpuClass::Rtx4090,
        GpuClass::Rtx3090,
        GpuClass::Other,
    ];

    /// Index of this class in per-class tables.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The GPUs a provider offers: all of one class.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub struct GpuOffer {
    /// GPU class (sets the minimum stake per GPU).
    pub class: GpuClass,
    /// Number of GPUs offered, 1..=[`MAX_GPUS_PER_PROVIDER`].
    pub count: u16,
    /// Memory per GPU, GiB.
    pub vram_gib: u16,
    /// Price per GPU-second, in base units of the config mint.
    pub price_per_gpu_second: u64,
}

impl GpuOffer {
    /// Checks an offer's fields, returning the named error for the first bad one.
    pub fn validate(&self) -> Result<()> {
        require!(
            self.count >= 1 && self.count <= MAX_GPUS_PER_PROVIDER,
            crate::error::GpunetError::InvalidGpuCount
        );
        require!(self.vram_gib > 0, crate::error::GpunetError::InvalidVram);
        require!(
            self.price_per_gpu_second > 0,
            crate::error::GpunetError::InvalidPrice
        );
        Ok(())
    }
}
