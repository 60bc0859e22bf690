// Mafalda: libsrtp 3.0 API on top of libsrtp 2.x (C++ only).
//
// mediasoup-sys 0.24.0 is written against libsrtp 3.0 (an unreleased beta that
// no package registry carries). The 2.x series is available (vendored by the
// crates.io crate datachannel-sys), and 3.0 mostly changed the shape of the
// API, not the protocol. This header is what the worker gets for
// `#include <srtp.h>`: it includes the real 2.x header and adds, as C++
// overloads and inline functions:
//
//   * the opaque `srtp_policy_t` handle with srtp_policy_create/destroy,
//     srtp_policy_set_ssrc/profile/window_size/allow_repeat_tx and
//     srtp_policy_add_key, plus srtp_create/srtp_add_stream/srtp_update taking
//     such a handle;
//   * the out-of-place, size_t based srtp_protect/srtp_unprotect/
//     srtp_protect_rtcp/srtp_unprotect_rtcp (copy into the output buffer, then
//     the in-place 2.x function);
//   * srtp_stream_remove and the error codes new in 3.0.
//
// Limitations (documented in docs/building.md): no MKI (srtp_policy_add_key
// with an MKI returns srtp_err_status_bad_param and mki_index is ignored), one
// key per policy, the profile must be set before the key, and the output
// buffer of an unprotect must be able to hold the whole protected packet.

#ifndef MAFALDA_SRTP3_COMPAT_H
#define MAFALDA_SRTP3_COMPAT_H

#ifndef __cplusplus
#error "The libsrtp 3 compatibility header of Mafalda is C++ only"
#endif

#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

// libsrtp 2.x calls its policy *struct* srtp_policy_t; 3.0 uses that name for
// an opaque handle. Rename the 2.x struct while including its header. The
// functions taking it are extern "C", so the rename does not affect linking.
#define srtp_policy_t srtp2_policy_t
#include "../libsrtp2/include/srtp.h"
#undef srtp_policy_t

#define MAFALDA_SRTP3_COMPAT 1

// Error codes that 3.0 added after srtp_err_status_pkt_idx_adv (27).
inline constexpr srtp_err_status_t srtp_err_status_buffer_small =
  static_cast<srtp_err_status_t>(28);
inline constexpr srtp_err_status_t srtp_err_status_cryptex_err =
  static_cast<srtp_err_status_t>(29);

struct mafalda_srtp3_policy
{
	srtp2_policy_t policy;                 // what the 2.x srtp_create() consumes
	unsigned char key[SRTP_MAX_KEY_LEN]; // master key immediately followed by salt
	srtp_profile_t profile;
	bool hasProfile;
	bool hasKey;
};

typedef mafalda_srtp3_policy* srtp_policy_t;

namespace mafalda_srtp3_compat
{
	inline void Wipe(void* data, size_t len)
	{
		volatile unsigned char* p = static_cast<volatile unsigned char*>(data);

		while (len--)
		{
			*p++ = 0;
		}
	}

	// Checks the buffers of an out-of-place protect, copies the plain packet to
	// the output buffer and gives its length as the int that 2.x wants.
	inline srtp_err_status_t PrepareProtect(
	  srtp_t ctx,
	  bool isRtp,
	  const uint8_t* in,
	  size_t inLen,
	  uint8_t* out,
	  const size_t* outLen,
	  int* len)
	{
		if (ctx == nullptr || in == nullptr || out == nullptr || outLen == nullptr)
		{
			return srtp_err_status_bad_param;
		}

		if (inLen > static_cast<size_t>(INT_MAX) - SRTP_MAX_TRAILER_LEN)
		{
			return srtp_err_status_bad_param;
		}

		// Fast path: room for the largest trailer libsrtp can ever append.
		if (*outLen < inLen + SRTP_MAX_TRAILER_LEN)
		{
			uint32_t trailer{ 0 };
			const srtp_err_status_t err =
			  isRtp ? srtp_get_protect_trailer_length(ctx, 0, 0, &trailer)
			        : srtp_get_protect_rtcp_trailer_length(ctx, 0, 0, &trailer);

			if (err != srtp_err_status_ok)
			{
				return err;
			}

			if (*outLen < inLen + trailer)
			{
				return srtp_err_status_buffer_small;
			}
		}

		if (out != in)
		{
			std::memmove(out, in, inLen);
		}

		*len = static_cast<int>(inLen);

		return srtp_err_status_ok;
	}

	// Same for an out-of-place unprotect: 2.x works in place, so the output
	// buffer must hold the whole protected packet.
	inline srtp_err_status_t PrepareUnprotect(
	  srtp_t ctx, const uint8_t* in, size_t inLen, uint8_t* out, const size_t* outLen, int* len)
	{
		if (ctx == nullptr || in == nullptr || out == nullptr || outLen == nullptr)
		{
			return srtp_err_status_bad_param;
		}

		if (inLen > static_cast<size_t>(INT_MAX))
		{
			return srtp_err_status_bad_param;
		}

		if (*outLen < inLen)
		{
			return srtp_err_status_buffer_small;
		}

		if (out != in)
		{
			std::memmove(out, in, inLen);
		}

		*len = static_cast<int>(inLen);

		return srtp_err_status_ok;
	}

	inline srtp_err_status_t CheckComplete(const mafalda_srtp3_policy* policy)
	{
		if (policy == nullptr || !policy->hasProfile || !policy->hasKey)
		{
			return srtp_err_status_bad_param;
		}

		return srtp_err_status_ok;
	}
} // namespace mafalda_srtp3_compat

/* Policy handle. */

inline srtp_err_status_t srtp_policy_create(srtp_policy_t* policy)
{
	if (policy == nullptr)
	{
		return srtp_err_status_bad_param;
	}

	auto* created = new (std::nothrow) mafalda_srtp3_policy{};

	if (created == nullptr)
	{
		return srtp_err_status_alloc_fail;
	}

	std::memset(std::addressof(created->policy), 0, sizeof(created->policy));
	created->policy.window_size = 128; // libsrtp's default replay window
	created->policy.next        = nullptr;
	*policy                     = created;

	return srtp_err_status_ok;
}

inline void srtp_policy_destroy(srtp_policy_t policy)
{
	if (policy == nullptr)
	{
		return;
	}

	mafalda_srtp3_compat::Wipe(policy->key, sizeof(policy->key));
	delete policy;
}

inline srtp_err_status_t srtp_policy_set_ssrc(srtp_policy_t policy, srtp_ssrc_t ssrc)
{
	if (policy == nullptr)
	{
		return srtp_err_status_bad_param;
	}

	policy->policy.ssrc = ssrc;

	return srtp_err_status_ok;
}

inline srtp_err_status_t srtp_policy_set_profile(srtp_policy_t policy, srtp_profile_t profile)
{
	if (policy == nullptr)
	{
		return srtp_err_status_bad_param;
	}

	srtp_err_status_t err =
	  srtp_crypto_policy_set_from_profile_for_rtp(std::addressof(policy->policy.rtp), profile);

	if (err != srtp_err_status_ok)
	{
		return err;
	}

	err =
	  srtp_crypto_policy_set_from_profile_for_rtcp(std::addressof(policy->policy.rtcp), profile);

	if (err != srtp_err_status_ok)
	{
		return err;
	}

	// A key added for another profile may have the wrong length now.
	if (policy->hasKey && policy->profile != profile)
	{
		mafalda_srtp3_compat::Wipe(policy->key, sizeof(policy->key));
		policy->policy.key = nullptr;
		policy->hasKey     = false;
	}

	policy->profile    = profile;
	policy->hasProfile = true;

	return srtp_err_status_ok;
}

inline srtp_err_status_t srtp_policy_add_key(
  srtp_policy_t policy,
  const uint8_t* key,
  size_t keyLen,
  const uint8_t* salt,
  size_t saltLen,
  const uint8_t* mki,
  size_t mkiLen)
{
	if (policy == nullptr || key == nullptr || (salt == nullptr && saltLen != 0))
	{
		return srtp_err_status_bad_param;
	}

	// No MKI support, hence a single key per policy.
	if (mki != nullptr || mkiLen != 0 || policy->hasKey || !policy->hasProfile)
	{
		return srtp_err_status_bad_param;
	}

	if (
	  keyLen != srtp_profile_get_master_key_length(policy->profile) ||
	  saltLen != srtp_profile_get_master_salt_length(policy->profile) ||
	  keyLen + saltLen > sizeof(policy->key))
	{
		return srtp_err_status_bad_param;
	}

	std::memcpy(policy->key, key, keyLen);

	if (saltLen != 0)
	{
		std::memcpy(policy->key + keyLen, salt, saltLen);
	}

	policy->policy.key = policy->key;
	policy->hasKey     = true;

	return srtp_err_status_ok;
}

inline srtp_err_status_t srtp_policy_set_window_size(srtp_policy_t policy, size_t windowSize)
{
	// Same bounds as libsrtp enforces when the session is created.
	if (policy == nullptr || windowSize < 64 || windowSize >= 0x8000)
	{
		return srtp_err_status_bad_param;
	}

	policy->policy.window_size = static_cast<unsigned long>(windowSize);

	return srtp_err_status_ok;
}

inline srtp_err_status_t srtp_policy_set_allow_repeat_tx(srtp_policy_t policy, bool allow)
{
	if (policy == nullptr)
	{
		return srtp_err_status_bad_param;
	}

	policy->policy.allow_repeat_tx = allow ? 1 : 0;

	return srtp_err_status_ok;
}

/* Sessions. */

inline srtp_err_status_t srtp_create(srtp_t* session, srtp_policy_t policy)
{
	const srtp_err_status_t err = mafalda_srtp3_compat::CheckComplete(policy);

	if (err != srtp_err_status_ok)
	{
		return err;
	}

	srtp2_policy_t single = policy->policy;
	single.next           = nullptr;

	return srtp_create(session, std::addressof(single));
}

inline srtp_err_status_t srtp_add_stream(srtp_t session, srtp_policy_t policy)
{
	const srtp_err_status_t err = mafalda_srtp3_compat::CheckComplete(policy);

	if (err != srtp_err_status_ok)
	{
		return err;
	}

	srtp2_policy_t single = policy->policy;
	single.next           = nullptr;

	return srtp_add_stream(session, std::addressof(single));
}

inline srtp_err_status_t srtp_update(srtp_t session, srtp_policy_t policy)
{
	const srtp_err_status_t err = mafalda_srtp3_compat::CheckComplete(policy);

	if (err != srtp_err_status_ok)
	{
		return err;
	}

	srtp2_policy_t single = policy->policy;
	single.next           = nullptr;

	return srtp_update(session, std::addressof(single));
}

inline srtp_err_status_t srtp_stream_remove(srtp_t session, uint32_t ssrc)
{
	return srtp_remove_stream(session, ssrc);
}

/* Protection, out of place (in == out is fine too). */

inline srtp_err_status_t srtp_protect(
  srtp_t ctx,
  const uint8_t* rtp,
  size_t rtpLen,
  uint8_t* srtp,
  size_t* srtpLen,
  size_t /*mkiIndex: no MKI support*/)
{
	int len{ 0 };
	srtp_err_status_t err =
	  mafalda_srtp3_compat::PrepareProtect(ctx, true, rtp, rtpLen, srtp, srtpLen, &len);

	if (err != srtp_err_status_ok)
	{
		return err;
	}

	err = srtp_protect(ctx, static_cast<void*>(srtp), &len);

	if (err == srtp_err_status_ok)
	{
		*srtpLen = static_cast<size_t>(len);
	}

	return err;
}

inline srtp_err_status_t srtp_unprotect(
  srtp_t ctx, const uint8_t* srtp, size_t srtpLen, uint8_t* rtp, size_t* rtpLen)
{
	int len{ 0 };
	srtp_err_status_t err =
	  mafalda_srtp3_compat::PrepareUnprotect(ctx, srtp, srtpLen, rtp, rtpLen, &len);

	if (err != srtp_err_status_ok)
	{
		return err;
	}

	err = srtp_unprotect(ctx, static_cast<void*>(rtp), &len);

	if (err == srtp_err_status_ok)
	{
		*rtpLen = static_cast<size_t>(len);
	}

	return err;
}

inline srtp_err_status_t srtp_protect_rtcp(
  srtp_t ctx,
  const uint8_t* rtcp,
  size_t rtcpLen,
  uint8_t* srtcp,
  size_t* srtcpLen,
  size_t /*mkiIndex: no MKI support*/)
{
	int len{ 0 };
	srtp_err_status_t err =
	  mafalda_srtp3_compat::PrepareProtect(ctx, false, rtcp, rtcpLen, srtcp, srtcpLen, &len);

	if (err != srtp_err_status_ok)
	{
		return err;
	}

	err = srtp_protect_rtcp(ctx, static_cast<void*>(srtcp), &len);

	if (err == srtp_err_status_ok)
	{
		*srtcpLen = static_cast<size_t>(len);
	}

	return err;
}

inline srtp_err_status_t srtp_unprotect_rtcp(
  srtp_t ctx, const uint8_t* srtcp, size_t srtcpLen, uint8_t* rtcp, size_t* rtcpLen)
{
	int len{ 0 };
	srtp_err_status_t err =
	  mafalda_srtp3_compat::PrepareUnprotect(ctx, srtcp, srtcpLen, rtcp, rtcpLen, &len);

	if (err != srtp_err_status_ok)
	{
		return err;
	}

	err = srtp_unprotect_rtcp(ctx, static_cast<void*>(rtcp), &len);

	if (err == srtp_err_status_ok)
	{
		*rtcpLen = static_cast<size_t>(len);
	}

	return err;
}

#endif
