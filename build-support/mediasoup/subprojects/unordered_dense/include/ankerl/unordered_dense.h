// Mafalda: a small stand-in for <ankerl/unordered_dense.h>.
//
// The mediasoup worker uses ankerl::unordered_dense (a header-only hash map
// library) for its containers. It is not carried by any package registry this
// project may use, so this header provides the subset of its API that the
// mediasoup-sys 0.24.0 worker sources use, on top of the standard library:
//
//   ankerl::unordered_dense::map<Key, T, Hash, KeyEqual, Allocator>
//   ankerl::unordered_dense::set<Key, Hash, KeyEqual, Allocator>
//   ankerl::unordered_dense::segmented_map / segmented_set (same thing)
//   ankerl::unordered_dense::hash<T>   (returns uint64_t, "avalanching")
//
// Differences from the real library that callers could observe, none of which
// the worker relies on (it compiles against this header, and std containers
// are stricter about nothing it does):
//   * iteration order is unspecified (the real map iterates in insertion order
//     until an erase),
//   * value_type is std::pair<const Key, T> instead of std::pair<Key, T>,
//   * iterators/references stay valid across insertions (node based), which is
//     a strictly stronger guarantee,
//   * it is slower (node based buckets instead of a dense vector).
//
// See docs/building.md.

#ifndef MAFALDA_ANKERL_UNORDERED_DENSE_COMPAT_H
#define MAFALDA_ANKERL_UNORDERED_DENSE_COMPAT_H

#define ANKERL_UNORDERED_DENSE_VERSION_MAJOR 5
#define ANKERL_UNORDERED_DENSE_VERSION_MINOR 3
#define ANKERL_UNORDERED_DENSE_VERSION_PATCH 2
#define MAFALDA_UNORDERED_DENSE_COMPAT 1

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace ankerl::unordered_dense
{
	namespace detail
	{
		// Finalizer of splitmix64: a bijective mix in which every input bit
		// affects every output bit, so integer keys hash well in power-of-two
		// or prime sized tables alike.
		constexpr std::uint64_t mix(std::uint64_t x) noexcept
		{
			x ^= x >> 30U;
			x *= UINT64_C(0xbf58476d1ce4e5b9);
			x ^= x >> 27U;
			x *= UINT64_C(0x94d049bb133111eb);
			x ^= x >> 31U;

			return x;
		}
	} // namespace detail

	// Generic case: defer to std::hash, then mix so that the result is
	// avalanching even where std::hash is the identity.
	template<typename T, typename Enable = void>
	struct hash
	{
		std::uint64_t operator()(const T& value) const
		  noexcept(noexcept(std::hash<T>{}(std::declval<const T&>())))
		{
			return detail::mix(static_cast<std::uint64_t>(std::hash<T>{}(value)));
		}
	};

	// Integers, enums and pointers: mix the value itself.
	template<typename T>
	struct hash<T, std::enable_if_t<std::is_integral_v<T> || std::is_enum_v<T>>>
	{
		using is_avalanching = void;

		std::uint64_t operator()(const T& value) const noexcept
		{
			if constexpr (std::is_enum_v<T>)
			{
				return detail::mix(
				  static_cast<std::uint64_t>(static_cast<std::underlying_type_t<T>>(value)));
			}
			else
			{
				return detail::mix(static_cast<std::uint64_t>(value));
			}
		}
	};

	template<typename T>
	struct hash<T*>
	{
		using is_avalanching = void;

		std::uint64_t operator()(T* ptr) const noexcept
		{
			return detail::mix(static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(ptr)));
		}
	};

	template<typename T>
	struct hash<std::unique_ptr<T>>
	{
		using is_avalanching = void;

		std::uint64_t operator()(const std::unique_ptr<T>& ptr) const noexcept
		{
			return hash<T*>{}(ptr.get());
		}
	};

	template<typename T>
	struct hash<std::shared_ptr<T>>
	{
		using is_avalanching = void;

		std::uint64_t operator()(const std::shared_ptr<T>& ptr) const noexcept
		{
			return hash<T*>{}(ptr.get());
		}
	};

	// Strings: std::hash of strings is already a good byte hash.
	template<typename CharT>
	struct hash<std::basic_string<CharT>>
	{
		using is_avalanching = void;
		using is_transparent = void;

		std::uint64_t operator()(std::basic_string_view<CharT> str) const noexcept
		{
			return static_cast<std::uint64_t>(std::hash<std::basic_string_view<CharT>>{}(str));
		}
	};

	template<typename CharT>
	struct hash<std::basic_string_view<CharT>>
	{
		using is_avalanching = void;
		using is_transparent = void;

		std::uint64_t operator()(std::basic_string_view<CharT> str) const noexcept
		{
			return static_cast<std::uint64_t>(std::hash<std::basic_string_view<CharT>>{}(str));
		}
	};

	template<
	  class Key,
	  class T,
	  class Hash      = hash<Key>,
	  class KeyEqual  = std::equal_to<Key>,
	  class Allocator = std::allocator<std::pair<const Key, T>>>
	using map = std::unordered_map<Key, T, Hash, KeyEqual, Allocator>;

	template<
	  class Key,
	  class Hash      = hash<Key>,
	  class KeyEqual  = std::equal_to<Key>,
	  class Allocator = std::allocator<Key>>
	using set = std::unordered_set<Key, Hash, KeyEqual, Allocator>;

	template<
	  class Key,
	  class T,
	  class Hash      = hash<Key>,
	  class KeyEqual  = std::equal_to<Key>,
	  class Allocator = std::allocator<std::pair<const Key, T>>>
	using segmented_map = std::unordered_map<Key, T, Hash, KeyEqual, Allocator>;

	template<
	  class Key,
	  class Hash      = hash<Key>,
	  class KeyEqual  = std::equal_to<Key>,
	  class Allocator = std::allocator<Key>>
	using segmented_set = std::unordered_set<Key, Hash, KeyEqual, Allocator>;
} // namespace ankerl::unordered_dense

#endif
