//! Transactions several keepers sign: `provider_slash` and `keeper_slash` need a quorum of a
//! lease's committee on one transaction. The asking keeper builds the message ([`message`]),
//! each co-signer checks that it is exactly the one instruction it agreed to
//! ([`check_sole_instruction`]) and signs its bytes, and the asking keeper assembles and sends
//! the transaction ([`GpunetClient::send_cosigned`]).
//!
//! Why the check matters: a signature covers the whole message. A co-signer that signed
//! without looking could be made to pay its fee, or authorise a transfer from its own token
//! account in a second instruction.

use solana_sdk::hash::Hash;
use solana_sdk::instruction::{AccountMeta, Instruction};
use solana_sdk::message::Message;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signature;
use solana_sdk::signer::Signer;
use solana_sdk::transaction::Transaction;

use crate::client::{GpunetClient, SdkError};

/// A legacy message of `instructions` paid by `payer`, on `blockhash`.
pub fn message(instructions: &[Instruction], payer: &Pubkey, blockhash: Hash) -> Message {
    Message::new_with_blockhash(instructions, Some(payer), &blockhash)
}

/// The message's only instruction, decompiled; an error if it has none, several, or
/// malformed indices.
pub fn sole_instruction(m: &Message) -> Result<Instruction, String> {
    let [ci] = m.instructions.as_slice() else {
        return Err(format!(
            "the message holds {} instructions, not one",
            m.instructions.len()
        ));
    };
    let key = |i: u8| {
        m.account_keys
            .get(usize::from(i))
            .copied()
            .ok_or_else(|| format!("account index {i} out of range"))
    };
    let mut accounts = Vec::with_capacity(ci.accounts.len());
    for &i in &ci.accounts {
        accounts.push(AccountMeta {
            pubkey: key(i)?,
            is_signer: m.is_signer(usize::from(i)),
            is_writable: m.is_maybe_writable(usize::from(i), None),
        });
    }
    Ok(Instruction {
        program_id: key(ci.program_id_index)?,
        accounts,
        data: ci.data.clone(),
    })
}

/// Checks that `m` is exactly `expected` (program, data, accounts in order) and nothing else,
/// that `cosigner` is one of its signers, and that someone else pays its fee.
pub fn check_sole_instruction(
    m: &Message,
    expected: &Instruction,
    cosigner: &Pubkey,
) -> Result<(), String> {
    let got = sole_instruction(m)?;
    if got.program_id != expected.program_id {
        return Err(format!("instruction for program {}", got.program_id));
    }
    if got.data != expected.data {
        return Err("the instruction's arguments are not the ones the evidence supports".into());
    }
    let keys = |ix: &Instruction| ix.accounts.iter().map(|a| a.pubkey).collect::<Vec<_>>();
    if keys(&got) != keys(expected) {
        return Err("the instruction's accounts are not the expected ones".into());
    }
    let signers = &m.account_keys[..usize::from(m.header.num_required_signatures)];
    if !signers.contains(cosigner) {
        return Err(format!("{cosigner} is not among the message's signers"));
    }
    if m.account_keys.first() == Some(cosigner) {
        return Err("the co-signer would pay the transaction's fee".into());
    }
    Ok(())
}

impl GpunetClient {
    /// Signs `m` with `payer` (its fee payer), adds the co-signers' signatures (each checked
    /// against its key), sends it and waits for confirmation. A refusal comes back as the
    /// program's named error.
    pub async fn send_cosigned(
        &self,
        m: Message,
        payer: &(dyn Signer + Sync),
        cosigned: &[(Pubkey, Signature)],
    ) -> Result<Signature, SdkError> {
        let instructions: Vec<Instruction> = sole_instruction(&m).into_iter().collect();
        let blockhash = m.recent_blockhash;
        let mut tx = Transaction::new_unsigned(m);
        for (key, sig) in cosigned {
            let Some(i) = tx.message.account_keys.iter().position(|k| k == key) else {
                return Err(SdkError::Cosign(format!(
                    "{key} is not a signer of the message"
                )));
            };
            if !sig.verify(key.as_ref(), &tx.message_data()) {
                return Err(SdkError::Cosign(format!(
                    "{key}'s signature does not verify"
                )));
            }
            tx.signatures[i] = *sig;
        }
        tx.try_partial_sign(&[payer], blockhash)
            .map_err(|e| SdkError::Cosign(e.to_string()))?;
        if !tx.is_signed() {
            return Err(SdkError::Cosign("a required signature is missing".into()));
        }
        self.send_transaction(&tx, &instructions).await
    }

    /// The active keeper account with the highest index other than `except`, when `except`
    /// is active and not it: the `last_keeper` account instructions that take an active
    /// keeper out of the active set need (the set stays dense by moving it into the gap).
    pub async fn last_active_keeper(&self, except: &Pubkey) -> Result<Option<Pubkey>, SdkError> {
        use gpunet::state::KeeperStatus;
        let active = self.config().await?.active_keepers;
        let keepers = self.keepers().await?;
        let leaving_active = keepers
            .iter()
            .any(|(a, k)| a == except && k.status == KeeperStatus::Active);
        Ok(keepers
            .into_iter()
            .find(|(a, k)| a != except && k.status == KeeperStatus::Active && k.index + 1 == active)
            .map(|(a, _)| a)
            .filter(|_| leaving_active))
    }
}

#[cfg(test)]
mod tests {
    use solana_sdk::signature::Keypair;

    use super::*;

    fn ix(signers: &[Pubkey], data: Vec<u8>) -> Instruction {
        let mut accounts = vec![AccountMeta::new(Pubkey::new_unique(), false)];
        accounts.extend(signers.iter().map(|s| AccountMeta::new_readonly(*s, true)));
        Instruction {
            program_id: gpunet::ID,
            accounts,
            data,
        }
    }

    #[test]
    fn a_cosigner_signs_only_the_one_instruction_it_expects_and_never_pays() {
        let (payer, me) = (Keypair::new().pubkey(), Keypair::new().pubkey());
        let want = ix(&[payer, me], vec![1, 2, 3]);
        let ok = message(std::slice::from_ref(&want), &payer, Hash::default());
        assert_eq!(check_sole_instruction(&ok, &want, &me), Ok(()));
        // Another argument, another account, a second instruction, not a signer, fee payer.
        let mut other_data = want.clone();
        other_data.data = vec![9];
        let mut other_account = want.clone();
        other_account.accounts[0].pubkey = Pubkey::new_unique();
        let transfer = solana_system_interface::instruction::transfer(&me, &payer, 1);
        for (m, who) in [
            (message(&[other_data], &payer, Hash::default()), me),
            (message(&[other_account], &payer, Hash::default()), me),
            (
                message(&[want.clone(), transfer], &payer, Hash::default()),
                me,
            ),
            (
                message(&[ix(&[payer], vec![1, 2, 3])], &payer, Hash::default()),
                me,
            ),
            (
                message(std::slice::from_ref(&want), &me, Hash::default()),
                me,
            ),
        ] {
            assert!(check_sole_instruction(&m, &want, &who).is_err());
        }
    }
}
