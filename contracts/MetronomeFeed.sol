// SPDX-License-Identifier: UNLICENSED
// Metronome's on-chain feed: stores the newest signed observation of each feed and answers like
// Chainlink's AggregatorV3Interface, per feed. Anyone may submit; a submission is accepted only when
// its EIP-712 signature (Metronome's domain and Observation type, see src/sign/eip712.h) recovers to a
// signer the owner authorised. docs/evm.md documents every function and revert reason.
pragma solidity 0.8.37;

contract MetronomeFeed {
    struct Submission {
        bytes32 feedId;
        uint64 round;
        uint64 timestampMs;
        int256 value;
        bytes signature;
    }

    // One storage slot of metadata and one for the value: a submission writes two slots.
    struct Feed {
        uint64 round;
        uint64 timestampMs;
        uint64 updatedAt; // block.timestamp (seconds) of the submission
        uint8 decimals;
        bool configured;
        int256 value;
    }

    // keccak256("EIP712Domain(string name,string version,uint256 chainId)")
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId)");
    bytes32 private constant NAME_HASH = keccak256("Metronome");
    bytes32 private constant VERSION_HASH = keccak256("1");
    bytes32 private constant OBSERVATION_TYPEHASH =
        keccak256("Observation(bytes32 feedId,uint64 round,uint64 timestampMs,int256 value)");
    // secp256k1n / 2: a larger s is the malleable twin of a valid signature (EIP-2).
    uint256 private constant MAX_S = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    uint64 public immutable maxFutureMs;
    address public owner;

    mapping(address => bool) private signers;
    mapping(bytes32 => Feed) private feeds;
    mapping(bytes32 => string) private descriptions;

    event Observed(bytes32 indexed feedId, uint64 round, uint64 timestampMs, int256 value, address signer);
    event SignerSet(address indexed signer, bool allowed);
    event FeedConfigured(bytes32 indexed feedId, uint8 decimals, string description);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    modifier onlyOwner() {
        require(msg.sender == owner, "not owner");
        _;
    }

    constructor(uint64 maxFutureMs_) {
        maxFutureMs = maxFutureMs_;
        owner = msg.sender;
        emit OwnershipTransferred(address(0), msg.sender);
    }

    function transferOwnership(address newOwner) external onlyOwner {
        require(newOwner != address(0), "zero owner");
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    function setSigner(address signer, bool allowed) external onlyOwner {
        require(signer != address(0), "zero signer");
        signers[signer] = allowed;
        emit SignerSet(signer, allowed);
    }

    function isSigner(address signer) external view returns (bool) {
        return signers[signer];
    }

    // Must precede the feed's first submission. The description may change later; the decimals may
    // not (stored values and signatures are scaled by them).
    function configureFeed(bytes32 feedId, uint8 decimals_, string calldata description_) external onlyOwner {
        Feed storage f = feeds[feedId];
        if (f.configured) {
            require(f.decimals == decimals_, "decimals fixed");
        } else {
            f.decimals = decimals_;
            f.configured = true;
        }
        descriptions[feedId] = description_;
        emit FeedConfigured(feedId, decimals_, description_);
    }

    function submit(bytes32 feedId, uint64 round, uint64 timestampMs, int256 value, bytes calldata signature)
        external
    {
        _submit(feedId, round, timestampMs, value, signature);
    }

    // All or nothing: the first invalid item reverts the whole batch with its reason.
    function submitBatch(Submission[] calldata items) external {
        require(items.length > 0, "empty batch");
        for (uint256 i = 0; i < items.length; ++i) {
            Submission calldata s = items[i];
            _submit(s.feedId, s.round, s.timestampMs, s.value, s.signature);
        }
    }

    function latestRoundData(bytes32 feedId)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        Feed storage f = _withData(feedId);
        roundId = uint80(f.round);
        answer = f.value;
        startedAt = f.timestampMs / 1000;
        updatedAt = f.updatedAt;
        answeredInRound = roundId;
    }

    function latestObservation(bytes32 feedId)
        external
        view
        returns (uint64 round, uint64 timestampMs, int256 value, uint256 updatedAt)
    {
        Feed storage f = _withData(feedId);
        return (f.round, f.timestampMs, f.value, f.updatedAt);
    }

    function decimals(bytes32 feedId) external view returns (uint8) {
        Feed storage f = feeds[feedId];
        require(f.configured, "unknown feed");
        return f.decimals;
    }

    function description(bytes32 feedId) external view returns (string memory) {
        require(feeds[feedId].configured, "unknown feed");
        return descriptions[feedId];
    }

    // The EIP-712 domain separator for this chain: {name "Metronome", version "1", chainId}.
    function domainSeparator() public view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid));
    }

    // The digest Metronome signs for an observation (what src/sign computes off chain).
    function observationDigest(bytes32 feedId, uint64 round, uint64 timestampMs, int256 value)
        public
        view
        returns (bytes32)
    {
        bytes32 structHash = keccak256(abi.encode(OBSERVATION_TYPEHASH, feedId, round, timestampMs, value));
        return keccak256(abi.encodePacked(hex"1901", domainSeparator(), structHash));
    }

    function _withData(bytes32 feedId) private view returns (Feed storage f) {
        f = feeds[feedId];
        require(f.configured, "unknown feed");
        require(f.timestampMs != 0, "no data");
    }

    function _submit(bytes32 feedId, uint64 round, uint64 timestampMs, int256 value, bytes calldata signature)
        private
    {
        Feed storage f = feeds[feedId];
        require(f.configured, "unknown feed");
        require(timestampMs > f.timestampMs, "not newer");
        require(uint256(timestampMs) <= block.timestamp * 1000 + maxFutureMs, "too far in future");
        address signer = _recover(observationDigest(feedId, round, timestampMs, value), signature);
        require(signers[signer], "unauthorised signer");
        f.round = round;
        f.timestampMs = timestampMs;
        f.updatedAt = uint64(block.timestamp);
        f.value = value;
        emit Observed(feedId, round, timestampMs, value, signer);
    }

    // 65 bytes r ‖ s ‖ v with v 27 or 28 and s in the lower half of the curve order.
    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address signer) {
        require(signature.length == 65, "bad signature");
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := calldataload(signature.offset)
            s := calldataload(add(signature.offset, 32))
            v := byte(0, calldataload(add(signature.offset, 64)))
        }
        require(v == 27 || v == 28, "bad signature");
        require(uint256(s) <= MAX_S, "bad signature");
        signer = ecrecover(digest, v, r, s);
        require(signer != address(0), "bad signature");
    }
}
