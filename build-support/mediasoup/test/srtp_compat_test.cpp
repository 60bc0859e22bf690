// Mafalda: direct test of the libsrtp 3.0 compatibility header (srtp.h of the
// libsrtp3 shim) over libsrtp 2.7.0 + OpenSSL. Run by scripts/test-srtp-compat.sh.
//
// For every SRTP crypto suite mediasoup supports it sets sessions up exactly
// like mediasoup's RTC::SrtpSession does (3.0 policy API), then checks for RTP
// and RTCP:
//   * round trip: out-of-place protect, in-place unprotect (as the worker does)
//     gives back the original packet, the trailer has the suite's length and
//     the payload is actually encrypted;
//   * parity: the 3.0-style out-of-place protect produces byte for byte what
//     the plain in-place 2.x function produces with the same key;
//   * tamper detection: a flipped bit in the header, the payload or the trailer,
//     or the wrong key, makes unprotect fail;
//   * replay detection, and srtp_err_status_buffer_small for a short buffer.
// Prints one PASS/FAIL line per suite and "N passed, M failed"; exits 1 on
// any failure.

#include <srtp.h>

#include <openssl/rand.h>

#include <arpa/inet.h>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#ifndef MAFALDA_SRTP3_COMPAT
#error "expected the Mafalda libsrtp3 compatibility header"
#endif

namespace
{
	struct Suite
	{
		const char* name;
		srtp_profile_t profile;
		size_t keyLen;     // master key
		size_t saltLen;    // master salt
		size_t rtpTagLen;  // bytes appended to RTP
		size_t rtcpTagLen; // bytes appended to RTCP besides the 4 byte SRTCP index
	};

	// The suites of mediasoup's RTC::SrtpSession::CryptoSuite.
	const Suite Suites[] = {
		{ "AEAD_AES_256_GCM", srtp_profile_aead_aes_256_gcm, 32, 12, 16, 16 },
		{ "AEAD_AES_128_GCM", srtp_profile_aead_aes_128_gcm, 16, 12, 16, 16 },
		{ "AES_CM_128_HMAC_SHA1_80", srtp_profile_aes128_cm_sha1_80, 16, 14, 10, 10 },
		// RFC 4568: the _32 suite uses an 80 bit tag for SRTCP.
		{ "AES_CM_128_HMAC_SHA1_32", srtp_profile_aes128_cm_sha1_32, 16, 14, 4, 10 },
	};

	constexpr size_t BufferSize = 1500 + SRTP_MAX_TRAILER_LEN;

	struct Failure
	{
		std::string what;
	};

	void Check(bool condition, const std::string& what)
	{
		if (!condition)
		{
			throw Failure{ what };
		}
	}

	void CheckOk(srtp_err_status_t err, const std::string& what)
	{
		Check(err == srtp_err_status_ok, what + " failed with srtp error " + std::to_string(err));
	}

	// Session set-up as in mediasoup's SrtpSession constructor.
	srtp_t CreateSession(const Suite& suite, srtp_ssrc_type_t direction, const std::vector<uint8_t>& key)
	{
		srtp_policy_t policy{ nullptr };
		CheckOk(srtp_policy_create(&policy), "srtp_policy_create");

		srtp_ssrc_t ssrc{};
		ssrc.type  = direction;
		ssrc.value = 0;

		srtp_t session{ nullptr };
		srtp_err_status_t err = srtp_policy_set_ssrc(policy, ssrc);

		if (err == srtp_err_status_ok)
			err = srtp_policy_set_profile(policy, suite.profile);

		if (err == srtp_err_status_ok)
		{
			Check(
			  srtp_profile_get_master_key_length(suite.profile) == suite.keyLen &&
			    srtp_profile_get_master_salt_length(suite.profile) == suite.saltLen,
			  "master key/salt lengths of the profile");
			Check(key.size() == suite.keyLen + suite.saltLen, "test key length");
			err = srtp_policy_add_key(
			  policy, key.data(), suite.keyLen, key.data() + suite.keyLen, suite.saltLen, nullptr, 0);
		}

		if (err == srtp_err_status_ok)
			err = srtp_policy_set_allow_repeat_tx(policy, true);

		if (err == srtp_err_status_ok)
			err = srtp_policy_set_window_size(policy, 1024);

		if (err == srtp_err_status_ok)
			err = srtp_create(&session, policy);

		srtp_policy_destroy(policy);
		CheckOk(err, "session set-up");

		return session;
	}

	// Plain 2.x session with the same key, for the parity check.
	srtp_t CreateSession2x(const Suite& suite, const std::vector<uint8_t>& key)
	{
		srtp2_policy_t policy;
		std::memset(&policy, 0, sizeof(policy));
		CheckOk(srtp_crypto_policy_set_from_profile_for_rtp(&policy.rtp, suite.profile), "2.x rtp policy");
		CheckOk(srtp_crypto_policy_set_from_profile_for_rtcp(&policy.rtcp, suite.profile), "2.x rtcp policy");
		std::vector<uint8_t> keyCopy(key);
		policy.key             = keyCopy.data();
		policy.ssrc.type       = ssrc_any_outbound;
		policy.window_size     = 1024;
		policy.allow_repeat_tx = 1;
		policy.next            = nullptr;

		srtp_t session{ nullptr };
		CheckOk(srtp_create(&session, &policy), "2.x srtp_create");

		return session;
	}

	std::vector<uint8_t> RandomBytes(size_t len)
	{
		std::vector<uint8_t> bytes(len);
		Check(RAND_bytes(bytes.data(), static_cast<int>(len)) == 1, "RAND_bytes");

		return bytes;
	}

	std::vector<uint8_t> MakeRtp(uint16_t seq, uint32_t ssrc, size_t payloadLen)
	{
		std::vector<uint8_t> packet(12 + payloadLen);
		packet[0] = 0x80; // V=2
		packet[1] = 96;   // PT
		const uint16_t seqN  = htons(seq);
		const uint32_t tsN   = htonl(seq * 960u);
		const uint32_t ssrcN = htonl(ssrc);
		std::memcpy(&packet[2], &seqN, 2);
		std::memcpy(&packet[4], &tsN, 4);
		std::memcpy(&packet[8], &ssrcN, 4);

		for (size_t i = 0; i < payloadLen; ++i)
			packet[12 + i] = static_cast<uint8_t>(i * 7 + seq);

		return packet;
	}

	// A Sender Report with no report blocks: 28 bytes.
	std::vector<uint8_t> MakeRtcpSr(uint32_t ssrc, uint32_t n)
	{
		std::vector<uint8_t> packet(28, 0);
		packet[0] = 0x80; // V=2, RC=0
		packet[1] = 200;  // SR
		const uint16_t lenN  = htons(6);
		const uint32_t ssrcN = htonl(ssrc);
		std::memcpy(&packet[2], &lenN, 2);
		std::memcpy(&packet[4], &ssrcN, 4);

		for (size_t i = 8; i < packet.size(); ++i)
			packet[i] = static_cast<uint8_t>(i * 13 + n);

		return packet;
	}

	// Protects `plain` (3.0 API, out of place), returns the protected bytes.
	std::vector<uint8_t> Protect(srtp_t session, bool rtp, const std::vector<uint8_t>& plain)
	{
		std::vector<uint8_t> out(BufferSize, 0xAA);
		size_t outLen = out.size();
		const srtp_err_status_t err =
		  rtp ? srtp_protect(session, plain.data(), plain.size(), out.data(), &outLen, 0)
		      : srtp_protect_rtcp(session, plain.data(), plain.size(), out.data(), &outLen, 0);
		CheckOk(err, rtp ? "srtp_protect" : "srtp_protect_rtcp");
		out.resize(outLen);

		return out;
	}

	// Unprotects in place, as mediasoup's DecryptSrtp()/DecryptSrtcp() do.
	srtp_err_status_t Unprotect(srtp_t session, bool rtp, std::vector<uint8_t>& packet)
	{
		size_t len = packet.size();
		const srtp_err_status_t err =
		  rtp ? srtp_unprotect(session, packet.data(), packet.size(), packet.data(), &len)
		      : srtp_unprotect_rtcp(session, packet.data(), packet.size(), packet.data(), &len);

		if (err == srtp_err_status_ok)
			packet.resize(len);

		return err;
	}

	void RunKind(const Suite& suite, bool rtp)
	{
		const char* kind = rtp ? "RTP" : "RTCP";
		const auto key   = RandomBytes(suite.keyLen + suite.saltLen);
		auto otherKey    = key;
		otherKey[0] ^= 0x01;

		srtp_t sender   = CreateSession(suite, ssrc_any_outbound, key);
		srtp_t receiver = CreateSession(suite, ssrc_any_inbound, key);
		srtp_t wrongKey = CreateSession(suite, ssrc_any_inbound, otherKey);
		srtp_t sender2x = CreateSession2x(suite, key);

		const uint32_t ssrc     = 0x11223344;
		const size_t expectTail = rtp ? suite.rtpTagLen : suite.rtcpTagLen + 4;
		uint32_t n              = 1;
		auto next = [&]() { return rtp ? MakeRtp(static_cast<uint16_t>(1000 + n), ssrc, 20 + (n * 37) % 1100) : MakeRtcpSr(ssrc, n); };

		// Round trip and 2.x parity over a run of packets.
		for (; n <= 64; ++n)
		{
			const auto plain     = next();
			const auto protected_ = Protect(sender, rtp, plain);
			const std::string at  = std::string(kind) + " packet " + std::to_string(n);

			Check(protected_.size() == plain.size() + expectTail, at + ": trailer length");
			Check(
			  std::memcmp(protected_.data(), plain.data(), rtp ? 12 : 8) == 0,
			  at + ": header must stay in clear");
			Check(
			  std::memcmp(protected_.data() + (rtp ? 12 : 8), plain.data() + (rtp ? 12 : 8), plain.size() - (rtp ? 12 : 8)) != 0,
			  at + ": payload must be encrypted");

			// Same packet through the in-place 2.x API on an identical session.
			std::vector<uint8_t> legacy(plain);
			legacy.resize(BufferSize);
			int legacyLen = static_cast<int>(plain.size());
			CheckOk(
			  rtp ? srtp_protect(sender2x, legacy.data(), &legacyLen)
			      : srtp_protect_rtcp(sender2x, legacy.data(), &legacyLen),
			  at + ": 2.x protect");
			legacy.resize(static_cast<size_t>(legacyLen));
			Check(legacy == protected_, at + ": 3.0-style and 2.x output differ");

			auto received = protected_;
			CheckOk(Unprotect(receiver, rtp, received), at + ": unprotect");
			Check(received == plain, at + ": round trip mismatch");
		}

		// Out-of-place unprotect into a separate buffer also works.
		{
			const auto plain = next();
			++n;
			const auto protected_ = Protect(sender, rtp, plain);
			std::vector<uint8_t> out(BufferSize);
			size_t outLen = out.size();
			CheckOk(
			  rtp ? srtp_unprotect(receiver, protected_.data(), protected_.size(), out.data(), &outLen)
			      : srtp_unprotect_rtcp(receiver, protected_.data(), protected_.size(), out.data(), &outLen),
			  std::string(kind) + ": out-of-place unprotect");
			out.resize(outLen);
			Check(out == plain, std::string(kind) + ": out-of-place round trip mismatch");
		}

		// Tampering: header byte, payload byte, last byte of the trailer.
		const size_t headerByte = rtp ? 5 : 6;
		for (const char* where : { "header", "payload", "trailer" })
		{
			const auto plain = next();
			++n;
			auto packet      = Protect(sender, rtp, plain);
			const size_t at  = std::strcmp(where, "header") == 0    ? headerByte
			                   : std::strcmp(where, "payload") == 0 ? (rtp ? 14 : 10)
			                                                        : packet.size() - 1;
			packet[at] ^= 0x40;
			const srtp_err_status_t err = Unprotect(receiver, rtp, packet);
			// A flipped payload bit can only be caught by authentication; a
			// flipped header or trailer bit (SSRC, SRTCP index) may also be
			// refused earlier, e.g. by the replay check.
			const bool refused = std::strcmp(where, "payload") == 0
			                       ? (err == srtp_err_status_auth_fail || err == srtp_err_status_cipher_fail)
			                       : err != srtp_err_status_ok;
			Check(
			  refused,
			  std::string(kind) + ": tampered " + where + " accepted (status " + std::to_string(err) + ")");
		}

		// Wrong key.
		{
			const auto plain = next();
			++n;
			auto packet = Protect(sender, rtp, plain);
			const srtp_err_status_t err = Unprotect(wrongKey, rtp, packet);
			Check(err != srtp_err_status_ok, std::string(kind) + ": packet accepted with the wrong key");
		}

		// Replay: the same packet twice.
		{
			const auto plain = next();
			++n;
			const auto packet = Protect(sender, rtp, plain);
			auto first        = packet;
			auto second       = packet;
			CheckOk(Unprotect(receiver, rtp, first), std::string(kind) + ": first copy");
			const srtp_err_status_t err = Unprotect(receiver, rtp, second);
			Check(err == srtp_err_status_replay_fail, std::string(kind) + ": replay not detected");
		}

		// Output buffer one byte too short for the trailer.
		{
			const auto plain = next();
			++n;
			std::vector<uint8_t> out(plain.size() + expectTail - 1);
			size_t outLen = out.size();
			const srtp_err_status_t err =
			  rtp ? srtp_protect(sender, plain.data(), plain.size(), out.data(), &outLen, 0)
			      : srtp_protect_rtcp(sender, plain.data(), plain.size(), out.data(), &outLen, 0);
			Check(err == srtp_err_status_buffer_small, std::string(kind) + ": short buffer not refused");
		}

		srtp_dealloc(sender);
		srtp_dealloc(receiver);
		srtp_dealloc(wrongKey);
		srtp_dealloc(sender2x);
	}
} // namespace

int main()
{
	std::printf("libsrtp: %s (through the Mafalda libsrtp3 compatibility header)\n", srtp_get_version_string());

	if (srtp_init() != srtp_err_status_ok)
	{
		std::printf("FAIL srtp_init\n0 passed, 1 failed\n");

		return 1;
	}

	int passed = 0;
	int failed = 0;

	// The policy API refuses what the shim does not support.
	{
		srtp_policy_t policy{ nullptr };
		const uint8_t key[46]{};
		const uint8_t mki[4]{ 1, 2, 3, 4 };
		bool ok = srtp_policy_create(&policy) == srtp_err_status_ok &&
		          srtp_policy_add_key(policy, key, 16, key + 16, 14, nullptr, 0) ==
		            srtp_err_status_bad_param && // no profile yet
		          srtp_policy_set_profile(policy, srtp_profile_aes128_cm_sha1_80) == srtp_err_status_ok &&
		          srtp_policy_add_key(policy, key, 16, key + 16, 14, mki, 4) ==
		            srtp_err_status_bad_param && // MKI
		          srtp_policy_add_key(policy, key, 32, key + 32, 14, nullptr, 0) ==
		            srtp_err_status_bad_param && // wrong key length
		          srtp_policy_set_window_size(policy, 16) == srtp_err_status_bad_param;
		srtp_t session{ nullptr };
		ok = ok && srtp_create(&session, policy) == srtp_err_status_bad_param; // no key, no SSRC
		srtp_policy_destroy(policy);
		std::printf("%s policy API argument checks\n", ok ? "PASS" : "FAIL");
		ok ? ++passed : ++failed;
	}

	for (const Suite& suite : Suites)
	{
		try
		{
			RunKind(suite, true);
			RunKind(suite, false);
			std::printf("PASS %s (RTP+RTCP: round trip, 2.x parity, tamper, wrong key, replay, short buffer)\n", suite.name);
			++passed;
		}
		catch (const Failure& failure)
		{
			std::printf("FAIL %s: %s\n", suite.name, failure.what.c_str());
			++failed;
		}
	}

	srtp_shutdown();
	std::printf("%d passed, %d failed\n", passed, failed);

	return failed == 0 ? 0 : 1;
}
