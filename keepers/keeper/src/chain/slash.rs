//! Slashing with the lease's committee: one keeper cannot slash alone.
//!
//! The program takes `provider_slash` and `keeper_slash` only with `slash_quorum` signatures of
//! the lease's committee on one transaction. The keeper holding the evidence ([`Committee`])
//! checks it itself ([`super::evidence`]), builds the transaction message with itself and
//! `quorum - 1` other members as signers, and asks each of them over gRPC
//! (`PeerService.CoSign`, at the endpoint its keeper account publishes). Each co-signer
//! ([`PeerSvc`]) re-checks the evidence on its own reading of the chain, checks that the message
//! is exactly the slash that evidence supports (one instruction, someone else paying,
//! [`gpunet_sdk::cosign`]), and only then signs. For workers silent past the grace period
//! ([`Fault::Silent`]) "re-checks" means its own record of when it last heard from each
//! ([`crate::liveness`]): a worker alive to the co-signer is not silent. A member that refuses or cannot be reached is
//! replaced by the next one, and the message (whose signer list changed) is signed again.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use gpunet_proto::v1 as pb;
use gpunet_sdk::cosign::{check_sole_instruction, message};
use gpunet_sdk::gpunet::instructions::KeeperSlashArgs;
use gpunet_sdk::gpunet::state::Lease;
use gpunet_sdk::ix::{self, LeaseParties};
use gpunet_sdk::{GpunetClient, Keeper, SdkError, pda, token};
use solana_sdk::instruction::Instruction;
use solana_sdk::message::Message;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature};
use solana_sdk::signer::Signer;
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use super::evidence::{self, EvidenceError, Finding};
use super::submit::Submitter;
use crate::liveness::Liveness;
use crate::metrics::{Metrics, label};

/// How long one co-signer may take to answer.
const COSIGN_TIMEOUT: Duration = Duration::from_secs(30);
/// Co-sign requests checked at once; more are refused (each costs several chain reads).
const COSIGN_CONCURRENCY: usize = 4;

/// Why a slash was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SlashError {
    /// This keeper's own check of the evidence failed.
    #[error("evidence: {0}")]
    Evidence(#[from] EvidenceError),
    /// Too few members co-signed.
    #[error("quorum of {quorum} not reached; refusals: {refusals}")]
    NoQuorum {
        /// Signatures needed.
        quorum: u8,
        /// Each member that did not sign, and why.
        refusals: String,
    },
    /// The chain refused the transaction or could not be reached.
    #[error("chain: {0}")]
    Chain(#[from] SdkError),
}

/// What is being slashed.
#[derive(Clone, Debug)]
pub enum Fault {
    /// The lease's provider: these proofs failed by its worker's own doing.
    Provider(Vec<pb::ProofVerdict>),
    /// The lease's provider: these workers (sorted), which owe the lease GPUs, have been
    /// silent past the grace period.
    Silent(Vec<Pubkey>),
    /// A committee member (keeper account) posted checkpoint `sequence` falsely or withholds
    /// its transcript.
    Keeper {
        /// The accused keeper account.
        accused: Pubkey,
        /// The checkpoint.
        sequence: u64,
    },
}

impl Fault {
    fn kind(&self) -> &'static str {
        match self {
            Fault::Provider(_) => "provider",
            Fault::Silent(_) => "silent",
            Fault::Keeper { .. } => "keeper",
        }
    }

    fn to_pb(&self) -> pb::co_sign_request::Evidence {
        match self {
            Fault::Provider(proofs) => pb::co_sign_request::Evidence::Provider(pb::ProviderFault {
                proofs: proofs.clone(),
            }),
            Fault::Silent(workers) => pb::co_sign_request::Evidence::Silent(pb::SilentWorkers {
                workers: workers.iter().map(|w| w.to_string()).collect(),
            }),
            Fault::Keeper { accused, sequence } => {
                pb::co_sign_request::Evidence::Keeper(pb::KeeperFault {
                    keeper: accused.to_string(),
                    sequence: *sequence,
                })
            }
        }
    }

    fn from_pb(e: pb::co_sign_request::Evidence) -> Result<Fault, Status> {
        Ok(match e {
            pb::co_sign_request::Evidence::Provider(p) => Fault::Provider(p.proofs),
            pb::co_sign_request::Evidence::Silent(s) => Fault::Silent(
                s.workers
                    .iter()
                    .map(|w| w.parse())
                    .collect::<Result<_, _>>()
                    .map_err(|_| Status::invalid_argument("silent: a worker is not a key"))?,
            ),
            pb::co_sign_request::Evidence::Keeper(k) => Fault::Keeper {
                accused: k
                    .keeper
                    .parse()
                    .map_err(|_| Status::invalid_argument("keeper: not an address"))?,
                sequence: k.sequence,
            },
        })
    }
}

/// A keeper as a committee member: checks evidence, gathers co-signatures, sends slashes, and
/// answers other members' requests to co-sign.
pub struct Committee {
    client: GpunetClient,
    submit: Submitter,
    wallet: Keypair,
    me: Pubkey,
    transcript_window: i64,
    metrics: Metrics,
    liveness: Arc<Liveness>,
}

impl Committee {
    /// A member signing with keeper wallet `wallet`; `transcript_window`: how long after a
    /// period's end a checkpoint's transcript may be missing before that is slashable;
    /// `liveness`: this keeper's record of when it heard from each worker (the keeper core's).
    pub fn new(
        rpc_url: &str,
        wallet: Keypair,
        transcript_window: Duration,
        metrics: Metrics,
        liveness: Arc<Liveness>,
    ) -> Self {
        let me = pda::keeper(&wallet.pubkey());
        Committee {
            client: GpunetClient::new(rpc_url.to_string()),
            submit: Submitter::new(rpc_url, metrics.clone()),
            wallet,
            me,
            transcript_window: i64::try_from(transcript_window.as_secs()).unwrap_or(i64::MAX),
            metrics,
            liveness,
        }
    }

    /// This member's record of when it heard from each worker.
    pub fn liveness(&self) -> &Liveness {
        &self.liveness
    }

    /// This member's keeper account.
    pub fn keeper(&self) -> Pubkey {
        self.me
    }

    /// Checks `fault` on this keeper's own reading of the chain; what it supports.
    async fn check(&self, lease: &Pubkey, fault: &Fault) -> Result<Finding, EvidenceError> {
        match fault {
            Fault::Provider(proofs) => {
                evidence::provider_fault(&self.client, lease, &self.me, proofs).await
            }
            Fault::Silent(workers) => {
                evidence::silent_workers(&self.client, lease, &self.me, workers, &self.liveness)
                    .await
            }
            Fault::Keeper { accused, sequence } => {
                evidence::keeper_fault(
                    &self.client,
                    lease,
                    &self.me,
                    accused,
                    *sequence,
                    self.transcript_window,
                )
                .await
            }
        }
    }

    /// The slash instruction for `fault` with `wallets` as co-signers, from the chain's
    /// current state (the same on every member that builds it).
    async fn instruction(
        &self,
        address: &Pubkey,
        lease: &Lease,
        fault: &Fault,
        finding: &Finding,
        wallets: &[Pubkey],
    ) -> Result<Instruction, SdkError> {
        let digest = finding.digest;
        let config = self.client.config().await?;
        let parties = LeaseParties {
            lease: *address,
            provider: lease.provider,
            keeper: lease.keeper,
            mint: config.mint,
            treasury: pda::treasury(),
        };
        let user_token = token::ata(&lease.user, &config.mint);
        Ok(match fault {
            Fault::Provider(_) | Fault::Silent(_) => {
                ix::provider_slash(&parties, &user_token, wallets, digest, finding.gpus)
            }
            Fault::Keeper { accused, sequence } => {
                let last = self.client.last_active_keeper(accused).await?;
                ix::keeper_slash(
                    &parties,
                    accused,
                    last,
                    &user_token,
                    wallets,
                    KeeperSlashArgs {
                        sequence: *sequence,
                        evidence_digest: digest,
                    },
                )
            }
        })
    }

    /// Slashes for `fault` on `address`'s lease with a quorum of its committee: checks the
    /// evidence, gathers co-signatures, sends. Returns the transaction's signature.
    pub async fn slash(&self, address: &Pubkey, fault: Fault) -> Result<Signature, SlashError> {
        let finding = self.check(address, &fault).await?;
        let lease = self.client.lease(address).await?;
        let quorum = lease.terms.slash_quorum;
        let accused = match &fault {
            Fault::Keeper { accused, .. } => Some(*accused),
            Fault::Provider(_) | Fault::Silent(_) => None,
        };
        // The others, each with its wallet and endpoint.
        let mut others: Vec<(Pubkey, Keeper)> = Vec::new();
        for k in lease.committee() {
            if *k == self.me || Some(*k) == accused {
                continue;
            }
            match self.client.fetch::<Keeper>("keeper", k).await {
                Ok(keeper) => others.push((*k, keeper)),
                // A member that closed its account cannot sign; the others may still make
                // the quorum.
                Err(SdkError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let config = self.client.config().await?;
        // The user's token account receives the compensation: make sure it exists.
        let user_token = token::ata(&lease.user, &config.mint);
        if self.client.rpc().get_account(&user_token).await.is_err() {
            let create = token::create_ata(&self.wallet.pubkey(), &lease.user, &config.mint);
            self.submit
                .send("create_user_token", &[create], &self.wallet)
                .await?;
        }
        let need = usize::from(quorum).saturating_sub(1);
        let mut refused: Vec<String> = Vec::new();
        let mut next = 0;
        let mut chosen: Vec<(Pubkey, Keeper)> = Vec::new();
        loop {
            while chosen.len() < need && next < others.len() {
                chosen.push(others[next].clone());
                next += 1;
            }
            if chosen.len() < need {
                return Err(SlashError::NoQuorum {
                    quorum,
                    refusals: refused.join("; "),
                });
            }
            let mut wallets = vec![self.wallet.pubkey()];
            wallets.extend(chosen.iter().map(|(_, k)| k.authority));
            let ixn = self
                .instruction(address, &lease, &fault, &finding, &wallets)
                .await?;
            let blockhash = self
                .client
                .rpc()
                .get_latest_blockhash()
                .await
                .map_err(SdkError::from)?;
            let m = message(std::slice::from_ref(&ixn), &self.wallet.pubkey(), blockhash);
            let asks = chosen.iter().map(|(_, k)| ask(k, address, &fault, &m));
            let answers = futures::future::join_all(asks).await;
            let mut sigs = Vec::new();
            let mut keep = Vec::new();
            for ((account, k), answer) in chosen.drain(..).zip(answers) {
                match answer {
                    Ok(sig) => {
                        sigs.push((k.authority, sig));
                        keep.push((account, k));
                    }
                    Err(why) => {
                        warn!(lease = %address, member = %account, why, "co-signer refused");
                        refused.push(format!("{account}: {why}"));
                    }
                }
            }
            if keep.len() == need {
                let what = match fault {
                    Fault::Provider(_) | Fault::Silent(_) => "provider_slash",
                    Fault::Keeper { .. } => "keeper_slash",
                };
                let sig = self
                    .submit
                    .send_cosigned(what, &m, &self.wallet, &sigs)
                    .await?;
                self.metrics
                    .slashes
                    .get_or_create(&label("kind", fault.kind()))
                    .inc();
                info!(
                    lease = %address,
                    kind = fault.kind(),
                    %sig,
                    cosigners = need,
                    gpus = finding.gpus,
                    "slash sent"
                );
                return Ok(sig);
            }
            chosen = keep;
        }
    }

    /// Answers another member's request: checks the evidence and the message; signs.
    async fn cosign(&self, req: pb::CoSignRequest) -> Result<pb::CoSignReply, Status> {
        let address: Pubkey = req
            .lease_id
            .parse()
            .map_err(|_| Status::invalid_argument("lease_id: not an address"))?;
        let fault = Fault::from_pb(
            req.evidence
                .ok_or_else(|| Status::invalid_argument("no evidence"))?,
        )?;
        let m: Message = bincode::deserialize(&req.message)
            .map_err(|e| Status::invalid_argument(format!("message: {e}")))?;
        let refuse = |why: String| {
            self.metrics.cosign_refused.inc();
            info!(lease = %address, kind = fault.kind(), why, "refused to co-sign a slash");
            Status::failed_precondition(why)
        };
        let finding = match self.check(&address, &fault).await {
            Ok(d) => d,
            Err(EvidenceError::Refuted(why) | EvidenceError::NotYet(why)) => {
                return Err(refuse(why));
            }
            Err(EvidenceError::Chain(e)) => return Err(Status::unavailable(e.to_string())),
        };
        let lease = self
            .client
            .lease(&address)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        // The signers the message names (after the fee payer), as the instruction lists them.
        let got = gpunet_sdk::cosign::sole_instruction(&m).map_err(&refuse)?;
        let mut expected = self
            .instruction(&address, &lease, &fault, &finding, &[])
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let wallets: Vec<Pubkey> = got
            .accounts
            .iter()
            .skip(expected.accounts.len())
            .step_by(2)
            .map(|a| a.pubkey)
            .collect();
        gpunet_sdk::ix::push_cosigners(&mut expected, &wallets);
        check_sole_instruction(&m, &expected, &self.wallet.pubkey()).map_err(&refuse)?;
        let signature = self.wallet.sign_message(&m.serialize());
        self.metrics
            .slashes_cosigned
            .get_or_create(&label("kind", fault.kind()))
            .inc();
        info!(lease = %address, kind = fault.kind(), "co-signed a slash");
        Ok(pb::CoSignReply {
            signer: self.wallet.pubkey().to_bytes().to_vec().into(),
            signature: signature.as_ref().to_vec().into(),
        })
    }
}

/// Asks member `k` to co-sign `m`; its signature, checked, or why not.
async fn ask(k: &Keeper, lease: &Pubkey, fault: &Fault, m: &Message) -> Result<Signature, String> {
    let req = pb::CoSignRequest {
        lease_id: lease.to_string(),
        evidence: Some(fault.to_pb()),
        message: bincode::serialize(m).map_err(|e| e.to_string())?.into(),
    };
    let call = async {
        let mut c = pb::peer_service_client::PeerServiceClient::connect(k.endpoint.clone())
            .await
            .map_err(|e| format!("unreachable at {}: {e}", k.endpoint))?
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        c.co_sign(req)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| s.message().to_string())
    };
    let reply = tokio::time::timeout(COSIGN_TIMEOUT, call)
        .await
        .map_err(|_| "no answer in time".to_string())??;
    let sig = Signature::try_from(reply.signature.as_ref()).map_err(|e| e.to_string())?;
    if reply.signer.as_ref() != k.authority.as_ref()
        || !sig.verify(k.authority.as_ref(), &m.serialize())
    {
        return Err("answered with a signature that is not its wallet's over the message".into());
    }
    Ok(sig)
}

/// Where a keeper's [`Committee`] goes once the keeper runs (it counts in the running
/// keeper's metrics, and the service must be handed to [`crate::start_with`] before that).
pub type CommitteeSlot = Arc<OnceLock<Arc<Committee>>>;

/// The `PeerService` a keeper serves to the other members of its committees.
pub struct PeerSvc {
    committee: CommitteeSlot,
    limit: Semaphore,
}

impl PeerSvc {
    /// The service, answering UNAVAILABLE until its committee is set in the returned slot.
    pub fn new() -> (Self, CommitteeSlot) {
        let slot = CommitteeSlot::default();
        let svc = PeerSvc {
            committee: slot.clone(),
            limit: Semaphore::new(COSIGN_CONCURRENCY),
        };
        (svc, slot)
    }

    /// The gRPC routes to hand to [`crate::start_with`].
    pub fn routes(self) -> tonic::service::Routes {
        tonic::service::Routes::new(
            pb::peer_service_server::PeerServiceServer::new(self)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        )
    }
}

#[tonic::async_trait]
impl pb::peer_service_server::PeerService for PeerSvc {
    async fn co_sign(
        &self,
        request: Request<pb::CoSignRequest>,
    ) -> Result<Response<pb::CoSignReply>, Status> {
        let _permit = self
            .limit
            .try_acquire()
            .map_err(|_| Status::resource_exhausted("too many co-sign requests at once"))?;
        let committee = self
            .committee
            .get()
            .ok_or_else(|| Status::unavailable("this keeper is not serving its committees yet"))?;
        committee
            .cosign(request.into_inner())
            .await
            .map(Response::new)
    }
}
