#include "src/transfer/inspect_command.h"

#include "base/error.h"
#include "oci/image_index.h"
#include "oci/json_util.h"
#include "oci/manifest.h"
#include "oci/media_types.h"

namespace dockless {

std::string run_inspect(const InspectOptions& options) {
  OciLayout layout = OciLayout::open(options.image.dir);
  Descriptor desc = layout.resolve(options.image.tag);
  std::string manifest_json = layout.blobs().read(desc.digest);
  if (media_type::is_index(desc.media_type)) {
    ImageIndex idx = ImageIndex::parse(manifest_json);
    const Descriptor* pick = nullptr;
    for (const auto& m : idx.manifests)
      if (m.platform && options.platform.matches(*m.platform)) {
        pick = &m;
        break;
      }
    if (pick == nullptr)
      throw Error(options.image.str() + " has no manifest for platform " + options.platform.str());
    desc = *pick;
    manifest_json = layout.blobs().read(desc.digest);
  }
  Manifest manifest = Manifest::parse(manifest_json);
  if (options.format == InspectFormat::kManifest) return json::pretty(manifest_json) + "\n";
  std::string config_json = layout.blobs().read(manifest.config.digest);
  if (options.format == InspectFormat::kConfig) return json::pretty(config_json) + "\n";
  std::string both = R"({"digest":")" + desc.digest.str() + R"(","manifest":)" + manifest_json +
                     R"(,"config":)" + config_json + "}";
  return json::pretty(both) + "\n";
}

}  // namespace dockless
