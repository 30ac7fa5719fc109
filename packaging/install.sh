#!/bin/sh
# Install webntpd from a source checkout, for systems without the .deb:
#   cargo build --release --locked && sudo packaging/install.sh
# Honours DESTDIR (staging root, default empty) and PREFIX (default /usr).
# Then: systemctl daemon-reload && systemctl enable --now webntpd-server
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr}
BIN=${BIN:-$here/target/release/webntpd}

if [ ! -x "$BIN" ]; then
    echo "install.sh: $BIN not found: build it first with 'cargo build --release --locked'" >&2
    exit 66
fi
install -D -m 0755 "$BIN" "$DESTDIR$PREFIX/bin/webntpd"
# The unit names /usr/bin/webntpd; point it at the real prefix.
install -d -m 0755 "$DESTDIR/lib/systemd/system"
sed "s|/usr/bin/webntpd|$PREFIX/bin/webntpd|" "$here/systemd/webntpd-server.service" \
    > "$DESTDIR/lib/systemd/system/webntpd-server.service"
chmod 0644 "$DESTDIR/lib/systemd/system/webntpd-server.service"
# Never overwrite an administrator's settings.
if [ ! -e "$DESTDIR/etc/default/webntpd-server" ]; then
    install -D -m 0644 "$here/config/webntpd-server.default" "$DESTDIR/etc/default/webntpd-server"
fi
install -D -m 0644 "$here/README.md" "$DESTDIR$PREFIX/share/doc/webntpd/README.md"
echo "installed webntpd in $DESTDIR$PREFIX; next: systemctl daemon-reload && systemctl enable --now webntpd-server"
