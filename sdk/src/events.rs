//! Events decoded from transactions. The program emits every event with `emit_cpi!`: a
//! self-invocation signed by its event authority whose data is Anchor's event tag, the event's
//! discriminator and its Borsh encoding. They travel as inner instructions, so they survive
//! native mode (no program logs) and log truncation.

use anchor_lang::event::EVENT_IX_TAG_LE;
use anchor_lang::{AnchorDeserialize, Discriminator};

macro_rules! gpunet_events {
    ($($name:ident),* $(,)?) => {
        /// Every event the program emits.
        #[derive(Debug, Clone)]
        pub enum GpunetEvent {
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                $name(gpunet::events::$name),
            )*
        }

        /// Decodes the data of one `emit_cpi!` inner instruction; `None` when it is not one
        /// of gpunet's events.
        pub fn decode_event(data: &[u8]) -> Option<GpunetEvent> {
            let body = data.strip_prefix(EVENT_IX_TAG_LE)?;
            $(
                if let Some(rest) = body.strip_prefix(gpunet::events::$name::DISCRIMINATOR) {
                    return gpunet::events::$name::try_from_slice(rest).ok().map(GpunetEvent::$name);
                }
            )*
            None
        }
    };
}

gpunet_events!(
    ConfigInitialized,
    ConfigUpdated,
    ConfigParamsApplied,
    TreasuryWithdrawn,
    AdminChanged,
    KeeperRegistered,
    KeeperUpdated,
    KeeperDraining,
    KeeperSlashed,
    KeeperDeregistered,
    KeeperClosed,
    ProviderRegistered,
    ProviderUpdated,
    ProviderStaked,
    ProviderUnstakeRequested,
    ProviderWithdrawn,
    ProviderClosed,
    LeaseOpened,
    LeaseCommitteeDrawn,
    LeaseToppedUp,
    LeaseResizeRequested,
    LeaseResized,
    CheckpointPosted,
    LeaseClosed,
    ProviderSlashed,
    LeaseKeeperReassigned,
);
