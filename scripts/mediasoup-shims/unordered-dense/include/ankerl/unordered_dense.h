/*
 * rtccdn: stands in for <ankerl/unordered_dense.h> when building the mediasoup worker against
 * Debian packages (the library is not packaged in bookworm). mediasoup uses only the
 * std-compatible part of its API, which this header maps onto the standard library:
 *
 *   ankerl::unordered_dense::map<Key, T[, Hash[, KeyEqual[, Allocator]]]>  -> std::unordered_map
 *   ankerl::unordered_dense::set<Key[, Hash[, KeyEqual[, Allocator]]]>     -> std::unordered_set
 *   ankerl::unordered_dense::hash<T>{}(value)                               -> std::hash, mixed
 *
 * The std containers are at least as permissive as the originals: references and iterators
 * stay valid across inserts and across erasing other elements (ankerl's dense storage moves
 * elements), and neither keeps insertion order across erase, so code written for either works.
 * Anything else of ankerl's API (values(), extract() returning a value, segmented_map, ...)
 * deliberately does not exist here: a worker release that starts using it fails to compile
 * instead of misbehaving.
 */
#ifndef RTCCDN_ANKERL_UNORDERED_DENSE_SHIM_H
#define RTCCDN_ANKERL_UNORDERED_DENSE_SHIM_H

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace ankerl::unordered_dense
{
	namespace detail
	{
		/*
		 * Spreads a 64-bit value over all bits (the SplitMix64 finalizer). libstdc++'s std::hash
		 * of integers and pointers is the identity; ankerl's hash mixes them, and mediasoup
		 * combines several per-field hashes of ports, SSRCs and addresses (HashCombine), which
		 * wants well-mixed inputs.
		 */
		constexpr std::uint64_t Mix(std::uint64_t x) noexcept
		{
			x ^= x >> 30U;
			x *= 0xbf58476d1ce4e5b9ULL;
			x ^= x >> 27U;
			x *= 0x94d049bb133111ebULL;
			x ^= x >> 31U;

			return x;
		}

		template<typename T>
		inline constexpr bool IsMixed = std::is_integral_v<T> || std::is_enum_v<T> || std::is_pointer_v<T>;
	} // namespace detail

	/* Strings and any other type: std::hash as it is. */
	template<typename T, typename Enable = void>
	struct hash : std::hash<T>
	{
	};

	/* Integers, enums and pointers: std::hash, then mixed. */
	template<typename T>
	struct hash<T, std::enable_if_t<detail::IsMixed<T>>>
	{
		std::size_t operator()(const T& value) const noexcept
		{
			return static_cast<std::size_t>(
			  detail::Mix(static_cast<std::uint64_t>(std::hash<T>{}(value))));
		}
	};

	template<
	  class Key,
	  class T,
	  class Hash      = hash<Key>,
	  class KeyEqual  = std::equal_to<Key>,
	  class Allocator = std::allocator<std::pair<const Key, T>>>
	using map = std::unordered_map<Key, T, Hash, KeyEqual, Allocator>;

	template<class Key, class Hash = hash<Key>, class KeyEqual = std::equal_to<Key>, class Allocator = std::allocator<Key>>
	using set = std::unordered_set<Key, Hash, KeyEqual, Allocator>;
} // namespace ankerl::unordered_dense

#endif /* RTCCDN_ANKERL_UNORDERED_DENSE_SHIM_H */
