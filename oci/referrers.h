// Referrers: manifests whose `subject` names another manifest (SBOMs,
// signatures, attestations). A registry lists them through the referrers
// API (GET /v2/NAME/referrers/DIGEST) or, without it, in an index tagged
// `sha256-<hex>` (the referrers tag schema of distribution-spec 1.1) that
// the client pushing a referrer maintains.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "oci/descriptor.h"

namespace dockless {

/// The referrers tag schema's tag for `subject`: "sha256-<hex>".
std::string referrers_tag(const Digest& subject);

/// How a referrer appears in a referrers list: its media type, digest and
/// size, its artifactType (or, lacking one, its config's media type) and
/// its annotations. Throws Error when `bytes` has no subject.
Descriptor referrer_descriptor(const std::string& bytes, const std::string& media_type);

/// The subject digest `bytes` names, or nullopt.
std::optional<Digest> subject_of(const std::string& bytes);

/// Throws Error unless the manifest `bytes` (digest `d`) names `subject`:
/// a list that says otherwise is not to be trusted.
void check_subject(const std::string& bytes, const Digest& d, const Digest& subject,
                   const std::string& what);

/// The descriptors of a referrers list (an image index).
std::vector<Descriptor> parse_referrers(const std::string& index_bytes, const std::string& what);

/// A referrers index (`existing`, or a new one) with `referrer` added
/// unless a descriptor of that digest is listed; nullopt when nothing
/// changes.
std::optional<std::string> add_referrer(const std::optional<std::string>& existing,
                                        const Descriptor& referrer);

}  // namespace dockless
