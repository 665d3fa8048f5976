/* The libxl sizes, offsets and constants domfs's libxl driver relies on
 * (src/driver/libxl/sys.rs), printed from libxen-dev's own headers as
 * "NAME VALUE", "STRUCT.sizeof VALUE" and "STRUCT.FIELD VALUE" lines for
 * tests/libxl_layout.rs. */
#include <stddef.h>
#include <stdio.h>
#include <libxl.h>
#include <libxl_utils.h>
#include <xentoollog.h>

#define SIZE(t) printf(#t ".sizeof %zu\n", sizeof(t))
#define FIELD(t, f) printf(#t "." #f " %zu\n", offsetof(t, f))
#define CONST(c) printf(#c " %lld\n", (long long)(c))

int main(void)
{
    SIZE(libxl_domain_config);
    SIZE(libxl_domain_restore_params);
    SIZE(libxl_device_disk);
    SIZE(libxl_dominfo);
    FIELD(libxl_dominfo, uuid);
    FIELD(libxl_dominfo, domid);
    SIZE(libxl_bitmap);
    FIELD(libxl_bitmap, size);
    FIELD(libxl_bitmap, map);
    SIZE(libxl_childproc_hooks);
    FIELD(libxl_childproc_hooks, chldowner);
    FIELD(libxl_childproc_hooks, fork_replacement);
    FIELD(libxl_childproc_hooks, reaped_callback);
    SIZE(libxl_event_hooks);
    FIELD(libxl_event_hooks, event_occurs_mask);
    FIELD(libxl_event_hooks, event_occurs);
    FIELD(libxl_event_hooks, disaster);
    CONST(LIBXL_VERSION);
    CONST(libxl_sigchld_owner_libxl_always_selective_reap);
    CONST(XTL_DEBUG);
    CONST(XTL_INFO);
    CONST(XTL_STDIOSTREAM_HIDE_PROGRESS);
    printf("INVALID_DOMID %lld\n", (long long)(uint32_t)INVALID_DOMID);
    CONST(ERROR_VERSION);
    CONST(ERROR_INVAL);
    CONST(ERROR_GUEST_TIMEDOUT);
    CONST(ERROR_TIMEDOUT);
    CONST(ERROR_NOPARAVIRT);
    CONST(ERROR_NOT_READY);
    CONST(ERROR_BUFFERFULL);
    CONST(ERROR_DOMAIN_NOTFOUND);
    CONST(ERROR_ABORTED);
    CONST(ERROR_NOTFOUND);
    CONST(ERROR_DOMAIN_DESTROYED);
    /* The sizes of the types the struct sizes are made of, so a
     * difference is found where it starts. */
    SIZE(libxl_uuid);
    SIZE(libxl_ev_user);
    return 0;
}
