#!/bin/sh
# Manual check of the xenstore driver against real Xen 4.17 in ../shared/xen-lab
# (QEMU, about 2 minutes; not run by CI):
#   cargo build --release; d=$(mktemp -d); cp tests/xen_common/real-xen-run.sh $d/run
#   ../shared/xen-lab/make-test-cpio.sh /tmp/t.cpio $d/run target/release/domfs /usr/bin/fusermount3
#   EXTRA_CPIO=/tmp/t.cpio DOM0_EXTRA=xenlab.noguest ../shared/xen-lab/boot.sh
# Add xenlab.stored=oxenstored to DOM0_EXTRA for Debian's default daemon. The lab's
# guest runs busybox as init: its kernel acknowledges control/shutdown but cannot
# power off, so the guest stays.
# domfs's xenstore driver against real Xen 4.17: over /dev/xen/xenbus, then the socket.
export PATH=/tests:$PATH
mkdir -p /mnt/y /mnt/x
echo "== xl create"
timeout 60 xl create /etc/xen/guest.cfg 2>&1 | tail -1
for i in $(seq 1 60); do grep -q DOMU-READY /var/log/xen/console/guest-guest1.log 2>/dev/null && break; sleep 1; done
echo "== domfs over the device"
RUST_LOG=info /tests/domfs -o xenstore=/dev/xen/xenbus xen:/// /mnt/y 2>/tmp/domfs-y.log &
sleep 4
timeout 15 ls /mnt/y; echo "ls rc=$?"
for f in info xml os_type; do echo "-- guest1/$f"; timeout 15 cat /mnt/y/guest1/$f; done
timeout 15 cat /mnt/y/Domain-0/info; echo "cat rc=$?"
echo 100M > /mnt/y/guest1/memory; echo "echo rc=$?; target $(timeout 5 xenstore-read /local/domain/1/memory/target)"
echo "== socket mount"
RUST_LOG=info /tests/domfs xen:/// /mnt/x 2>/tmp/domfs-x.log &
sleep 3
timeout 15 ls /mnt/x; timeout 15 cat /mnt/x/guest1/memory
echo "setvcpus 1" > /mnt/x/guest1/control; echo "echo rc=$?"; cat /mnt/x/guest1/last_error
echo "== shutdown through the device mount"
timeout 20 xenstore-watch -n 3 /local/domain/1/control/shutdown > /tmp/watch.out 2>&1 &
sleep 1
timeout 10 sh -c 'echo shutdown > /mnt/y/guest1/control'; echo "echo rc=$?"
sleep 5
echo "watch saw:"; cat /tmp/watch.out
echo "control/shutdown now: '$(timeout 5 xenstore-read /local/domain/1/control/shutdown)'"
timeout 10 xl list
for i in $(seq 1 30); do timeout 5 ls /mnt/x | grep -q guest1 || break; sleep 1; done
echo "-- after"; timeout 10 ls /mnt/x; timeout 10 ls /mnt/y; timeout 10 xl list
echo "== logs"; grep -v DEBUG /tmp/domfs-y.log | tail -15; tail -15 /tmp/domfs-x.log
echo "== big directory"
for i in $(seq 1 100); do xenstore-write /big/child-with-quite-a-long-name-to-fill-the-reply-$i x; done
xenstore-list /big | wc -l; echo "xenstore-list rc=$?"
XENSTORED_PATH=/dev/xen/xenbus xenstore-list /big | wc -l
ps | grep -i xenstored | grep -v grep
echo XS-LAB-END
