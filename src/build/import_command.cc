#include "src/build/import_command.h"

#include <sys/stat.h>

#include "layers/layer_writer.h"
#include "layers/tar_writer.h"
#include "base/error.h"
#include "src/build/image_builder.h"

namespace dockless {

Digest run_import(const ImportOptions& options) {
  struct stat st;
  if (::stat(options.rootfs.c_str(), &st) != 0) throw_errno("rootfs " + options.rootfs);
  if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
    throw Error("rootfs " + options.rootfs + ": neither a directory nor a tar file");

  TarOptions tar;
  tar.dest = "/";
  tar.mtime_clamp = mtime_clamp_from_environment();
  if (options.chown) {
    tar.uid = options.chown->first;
    tar.gid = options.chown->second;
  } else {
    tar.uid.reset();
    tar.gid.reset();
  }

  OciLayout layout = OciLayout::open_or_create(options.output.dir);
  LayerBlob layer = write_layer(
      [&](ByteSink& sink) {
        if (S_ISDIR(st.st_mode)) write_directory_tar(options.rootfs, tar, sink);
        else rewrite_tar(options.rootfs, tar, sink);
      },
      options.compression, layout.blobs());

  ImageBuilder image = ImageBuilder::from_scratch(options.platform, format_rfc3339(tar.mtime_clamp));
  ContainerConfig& cc = image.config().config;
  cc.set_env("PATH", kDefaultPath);
  options.settings.apply(cc);
  image.add_layer(layer, "dockless import: root filesystem");
  Descriptor manifest = image.store(layout.blobs());
  layout.set_tag(manifest, options.output.tag.empty() ? "latest" : options.output.tag);
  return manifest.digest;
}

}  // namespace dockless
