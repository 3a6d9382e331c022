#!/bin/bash
# The default custom setup (NeMo RL's is docker/install_apptainer.sh, which
# installs apptainer with a `singularity` symlink). This stand-in installs a
# tiny `apptainer` script and the symlink, so that the image shows it ran.
set -euo pipefail
cat > /usr/local/bin/apptainer <<'SCRIPT'
#!/bin/sh
echo "apptainer version 0.0-standin"
SCRIPT
chmod 0755 /usr/local/bin/apptainer
ln -sf apptainer /usr/local/bin/singularity
echo "custom setup: $(basename "$0")" > /opt/custom-setup.done
