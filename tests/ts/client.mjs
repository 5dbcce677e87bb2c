// Anchor's TypeScript client (@anchor-lang/core) against gpunet on a localnet, using only the
// committed IDL (idl/gpunet.json): list gpunet accounts, send one gpunet instruction, decode
// its event. Usage: node client.mjs <rpc-url> [<ws-url>] — prints one JSON line; exits non-zero
// on failure.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import * as anchor from "@anchor-lang/core";
import BN from "bn.js";
import { Connection, Keypair, LAMPORTS_PER_SOL, PublicKey } from "@solana/web3.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const idl = JSON.parse(readFileSync(path.join(here, "..", "..", "idl", "gpunet.json"), "utf8"));
const url = process.argv[2] ?? "http://127.0.0.1:8899";
const wsEndpoint = process.argv[3] ?? "ws://127.0.0.1:8900";

const connection = new Connection(url, { commitment: "confirmed", wsEndpoint });
const wallet = Keypair.generate();
const provider = new anchor.AnchorProvider(connection, new anchor.Wallet(wallet), {
  commitment: "confirmed",
});
const program = new anchor.Program(idl, provider);

// SOL for fees and rent.
const airdrop = await connection.requestAirdrop(wallet.publicKey, 2 * LAMPORTS_PER_SOL);
await connection.confirmTransaction(airdrop, "confirmed");

// Read: the config and every provider, decoded by the IDL.
const [configPda] = PublicKey.findProgramAddressSync([Buffer.from("config")], program.programId);
const config = await program.account.config.fetch(configPda);
const before = await program.account.provider.all();

// Write: register this wallet as a provider (PDAs resolved from the IDL's seeds).
const sig = await program.methods
  .providerRegister({
    region: "ts-land",
    zone: "a",
    endpoint: "grpc://127.0.0.1:7000",
    gpu: { class: { h100: {} }, count: 2, vramGib: 80, pricePerGpuSecond: new BN(7) },
    workers: [wallet.publicKey],
  })
  .accountsPartial({ authority: wallet.publicKey, mint: config.mint })
  .rpc();

const after = await program.account.provider.all();
const mine = after.find((p) => p.account.authority.equals(wallet.publicKey));
if (!mine) throw new Error("the new provider is not listed");

// The event travels as an inner instruction (emit_cpi!): Anchor's event tag, then the event.
const tx = await connection.getTransaction(sig, {
  commitment: "confirmed",
  maxSupportedTransactionVersion: 0,
});
const keys = tx.transaction.message.staticAccountKeys;
const events = [];
for (const group of tx.meta.innerInstructions ?? []) {
  for (const ix of group.instructions) {
    if (!keys[ix.programIdIndex].equals(program.programId)) continue;
    const data = anchor.utils.bytes.bs58.decode(ix.data);
    const event = program.coder.events.decode(Buffer.from(data.slice(8)).toString("base64"));
    if (event) events.push(event);
  }
}
const registered = events.find((e) => e.name === "providerRegistered");
if (!registered) throw new Error(`no providerRegistered event in ${JSON.stringify(events)}`);
if (!registered.data.authority.equals(wallet.publicKey)) throw new Error("event names another authority");

console.log(
  JSON.stringify({
    ok: true,
    providersBefore: before.length,
    providersAfter: after.length,
    gpus: mine.account.gpu.count,
    event: registered.name,
    mint: config.mint.toBase58(),
  }),
);
