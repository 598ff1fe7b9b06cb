// Shared by tests/evm/contract_test.mjs and bench/evm_gas.mjs: a throwaway ganache chain (pinned
// in package.json) on a free 127.0.0.1 port, the MetronomeFeed artifact the build compiled
// (build/contracts/MetronomeFeed.json), and Metronome's EIP-712 types.
import fs from "node:fs";
import ganache from "ganache";
import { ContractFactory, JsonRpcProvider, TypedDataEncoder, keccak256, toUtf8Bytes } from "ethers";

export const CHAIN_ID = 1337n;

// What src/sign signs (src/sign/eip712.h): no verifyingContract, no salt.
export const OBSERVATION_TYPES = {
  Observation: [
    { name: "feedId", type: "bytes32" },
    { name: "round", type: "uint64" },
    { name: "timestampMs", type: "uint64" },
    { name: "value", type: "int256" },
  ],
};
export function domain(chainId = CHAIN_ID) {
  return { name: "Metronome", version: "1", chainId };
}
export function feedId(name) {
  return keccak256(toUtf8Bytes(name));
}
export function observationDigest(message, chainId = CHAIN_ID) {
  return TypedDataEncoder.hash(domain(chainId), OBSERVATION_TYPES, message);
}

export function readArtifact(file) {
  let artifact;
  try {
    artifact = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`cannot read the contract artifact ${file} (built by contracts/compile.mjs): ${e.message}`);
  }
  if (!Array.isArray(artifact.abi) || !/^0x[0-9a-f]+$/.test(artifact.bytecode ?? "")) {
    throw new Error(`${file} has no abi array or hex bytecode`);
  }
  return artifact;
}

// Starts ganache in this process on 127.0.0.1, a port the OS picks. blockTime 0: a block per
// transaction (instamine); > 0: a block every blockTime seconds. Returns {url, provider, close}.
export async function startChain({ blockTime = 0 } = {}) {
  const server = ganache.server({
    logging: { quiet: true },
    chain: { chainId: Number(CHAIN_ID), hardfork: "shanghai" },
    miner: { blockTime },
    wallet: { deterministic: true, totalAccounts: 4 },
  });
  await server.listen(0, "127.0.0.1");
  const { port } = server.address();
  const url = `http://127.0.0.1:${port}`;
  const provider = new JsonRpcProvider(url, Number(CHAIN_ID), { staticNetwork: true, cacheTimeout: -1 });
  provider.pollingInterval = 50;
  let closed = false;
  return {
    url,
    provider,
    async close() {
      if (closed) return;
      closed = true;
      provider.destroy();
      await server.close();
    },
  };
}

// Deploys MetronomeFeed(maxFutureMs) from `deployer`; returns the connected contract.
export async function deployFeed(artifact, deployer, maxFutureMs) {
  const factory = new ContractFactory(artifact.abi, artifact.bytecode, deployer);
  const contract = await factory.deploy(maxFutureMs);
  await contract.waitForDeployment();
  return contract;
}

// A Submission struct signed by `wallet` with ethers' signTypedData.
export async function signed(wallet, name, round, timestampMs, value) {
  const message = { feedId: feedId(name), round: BigInt(round), timestampMs: BigInt(timestampMs), value: BigInt(value) };
  const signature = await wallet.signTypedData(domain(), OBSERVATION_TYPES, message);
  return { ...message, signature };
}
