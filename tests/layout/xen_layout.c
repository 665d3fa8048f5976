/* Prints the size and field offsets of every struct domfs's hypervisor
 * driver hands to Xen or the kernel, and the constants it uses, from Xen's
 * own public headers (Debian libxen-dev, including its xen/sys/privcmd.h).
 * Lines: "STRUCT size N", "STRUCT.FIELD N", "CONSTANT N".
 * Built and run by tests/hypervisor_layout.rs with -D__XEN_TOOLS__. */
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <xen/xen.h>
#include <xen/domctl.h>
#include <xen/sysctl.h>
#include <xen/version.h>
#include <sys/ioctl.h>
#include <linux/types.h>
#include <xen/sys/privcmd.h>

#define SIZE(s) printf("%s size %zu\n", #s, sizeof(struct s))
#define OFF(s, f) printf("%s.%s %zu\n", #s, #f, offsetof(struct s, f))

int main(void)
{
    printf("XEN_SYSCTL_INTERFACE_VERSION %u\n", XEN_SYSCTL_INTERFACE_VERSION);
    printf("XEN_DOMCTL_INTERFACE_VERSION %u\n", XEN_DOMCTL_INTERFACE_VERSION);
    printf("XEN_SYSCTL_physinfo %u\n", XEN_SYSCTL_physinfo);
    printf("XEN_SYSCTL_getdomaininfolist %u\n", XEN_SYSCTL_getdomaininfolist);
    printf("XEN_DOMCTL_destroydomain %u\n", XEN_DOMCTL_destroydomain);
    printf("XEN_DOMCTL_pausedomain %u\n", XEN_DOMCTL_pausedomain);
    printf("XEN_DOMCTL_unpausedomain %u\n", XEN_DOMCTL_unpausedomain);
    printf("XEN_DOMCTL_getdomaininfo %u\n", XEN_DOMCTL_getdomaininfo);
    printf("XEN_DOMCTL_max_mem %u\n", XEN_DOMCTL_max_mem);
    printf("XEN_SYSCTL_numainfo %u\n", XEN_SYSCTL_numainfo);
    printf("XEN_DOMCTL_setvcpuaffinity %u\n", XEN_DOMCTL_setvcpuaffinity);
    printf("XEN_DOMCTL_getvcpuinfo %u\n", XEN_DOMCTL_getvcpuinfo);
    printf("XEN_DOMCTL_getvcpuaffinity %u\n", XEN_DOMCTL_getvcpuaffinity);
    printf("XEN_VCPUAFFINITY_HARD %u\n", XEN_VCPUAFFINITY_HARD);
    printf("XEN_SYSCTL_sched_id %u\n", XEN_SYSCTL_sched_id);
    printf("XEN_DOMCTL_scheduler_op %u\n", XEN_DOMCTL_scheduler_op);
    printf("XEN_DOMCTL_SCHEDOP_putinfo %u\n", XEN_DOMCTL_SCHEDOP_putinfo);
    printf("XEN_DOMCTL_SCHEDOP_getinfo %u\n", XEN_DOMCTL_SCHEDOP_getinfo);
    printf("XEN_SCHEDULER_CREDIT %u\n", XEN_SCHEDULER_CREDIT);
    printf("XEN_SCHEDULER_CREDIT2 %u\n", XEN_SCHEDULER_CREDIT2);
    printf("XEN_SCHEDULER_ARINC653 %u\n", XEN_SCHEDULER_ARINC653);
    printf("XEN_SCHEDULER_RTDS %u\n", XEN_SCHEDULER_RTDS);
    printf("XEN_SCHEDULER_NULL %u\n", XEN_SCHEDULER_NULL);
    printf("XEN_INVALID_MAX_VCPU_ID %u\n", XEN_INVALID_MAX_VCPU_ID);
    /* Stored in u64 fields: print the value those fields hold. */
    printf("XEN_INVALID_MEM_SZ %llu\n",
           (unsigned long long)(uint64_t)XEN_INVALID_MEM_SZ);
    printf("__HYPERVISOR_xen_version %u\n", __HYPERVISOR_xen_version);
    printf("__HYPERVISOR_sysctl %u\n", __HYPERVISOR_sysctl);
    printf("__HYPERVISOR_domctl %u\n", __HYPERVISOR_domctl);
    printf("XENVER_version %u\n", XENVER_version);
    printf("XENVER_extraversion %u\n", XENVER_extraversion);
    printf("XENVER_capabilities %u\n", XENVER_capabilities);
    printf("xen_extraversion_t %zu\n", sizeof(xen_extraversion_t));
    printf("xen_capabilities_info_t %zu\n", sizeof(xen_capabilities_info_t));

    SIZE(xen_sysctl);
    OFF(xen_sysctl, cmd);
    OFF(xen_sysctl, interface_version);
    OFF(xen_sysctl, u);
    SIZE(xen_domctl);
    OFF(xen_domctl, cmd);
    OFF(xen_domctl, interface_version);
    OFF(xen_domctl, domain);
    OFF(xen_domctl, u);
    SIZE(xen_domctl_getdomaininfo);
    OFF(xen_domctl_getdomaininfo, domain);
    OFF(xen_domctl_getdomaininfo, flags);
    OFF(xen_domctl_getdomaininfo, tot_pages);
    OFF(xen_domctl_getdomaininfo, max_pages);
    OFF(xen_domctl_getdomaininfo, outstanding_pages);
    OFF(xen_domctl_getdomaininfo, shr_pages);
    OFF(xen_domctl_getdomaininfo, paged_pages);
    OFF(xen_domctl_getdomaininfo, shared_info_frame);
    OFF(xen_domctl_getdomaininfo, cpu_time);
    OFF(xen_domctl_getdomaininfo, nr_online_vcpus);
    OFF(xen_domctl_getdomaininfo, max_vcpu_id);
    OFF(xen_domctl_getdomaininfo, ssidref);
    OFF(xen_domctl_getdomaininfo, handle);
    OFF(xen_domctl_getdomaininfo, cpupool);
    OFF(xen_domctl_getdomaininfo, gpaddr_bits);
    OFF(xen_domctl_getdomaininfo, arch_config);
    SIZE(xen_arch_domainconfig);
    OFF(xen_arch_domainconfig, emulation_flags);
    OFF(xen_arch_domainconfig, misc_flags);
    SIZE(xen_domctl_max_mem);
    OFF(xen_domctl_max_mem, max_memkb);
    SIZE(xen_domctl_getvcpuinfo);
    OFF(xen_domctl_getvcpuinfo, vcpu);
    OFF(xen_domctl_getvcpuinfo, online);
    OFF(xen_domctl_getvcpuinfo, blocked);
    OFF(xen_domctl_getvcpuinfo, running);
    OFF(xen_domctl_getvcpuinfo, cpu_time);
    OFF(xen_domctl_getvcpuinfo, cpu);
    SIZE(xenctl_bitmap);
    OFF(xenctl_bitmap, bitmap);
    OFF(xenctl_bitmap, nr_bits);
    SIZE(xen_domctl_vcpuaffinity);
    OFF(xen_domctl_vcpuaffinity, vcpu);
    OFF(xen_domctl_vcpuaffinity, flags);
    OFF(xen_domctl_vcpuaffinity, cpumap_hard);
    OFF(xen_domctl_vcpuaffinity, cpumap_soft);
    SIZE(xen_sysctl_meminfo);
    OFF(xen_sysctl_meminfo, memsize);
    OFF(xen_sysctl_meminfo, memfree);
    SIZE(xen_sysctl_sched_id);
    OFF(xen_sysctl_sched_id, sched_id);
    SIZE(xen_domctl_scheduler_op);
    OFF(xen_domctl_scheduler_op, sched_id);
    OFF(xen_domctl_scheduler_op, cmd);
    OFF(xen_domctl_scheduler_op, u.credit.weight);
    OFF(xen_domctl_scheduler_op, u.credit.cap);
    OFF(xen_domctl_scheduler_op, u.credit2.weight);
    OFF(xen_domctl_scheduler_op, u.credit2.cap);
    SIZE(xen_sysctl_numainfo);
    OFF(xen_sysctl_numainfo, num_nodes);
    OFF(xen_sysctl_numainfo, meminfo);
    OFF(xen_sysctl_numainfo, distance);
    SIZE(xen_sysctl_getdomaininfolist);
    OFF(xen_sysctl_getdomaininfolist, first_domain);
    OFF(xen_sysctl_getdomaininfolist, max_domains);
    OFF(xen_sysctl_getdomaininfolist, buffer);
    OFF(xen_sysctl_getdomaininfolist, num_domains);
    SIZE(xen_sysctl_physinfo);
    OFF(xen_sysctl_physinfo, threads_per_core);
    OFF(xen_sysctl_physinfo, cores_per_socket);
    OFF(xen_sysctl_physinfo, nr_cpus);
    OFF(xen_sysctl_physinfo, max_cpu_id);
    OFF(xen_sysctl_physinfo, nr_nodes);
    OFF(xen_sysctl_physinfo, max_node_id);
    OFF(xen_sysctl_physinfo, cpu_khz);
    OFF(xen_sysctl_physinfo, capabilities);
    OFF(xen_sysctl_physinfo, arch_capabilities);
    OFF(xen_sysctl_physinfo, total_pages);
    OFF(xen_sysctl_physinfo, free_pages);
    OFF(xen_sysctl_physinfo, scrub_pages);
    OFF(xen_sysctl_physinfo, outstanding_pages);
    OFF(xen_sysctl_physinfo, max_mfn);
    OFF(xen_sysctl_physinfo, hw_cap);
    printf("IOCTL_PRIVCMD_HYPERCALL %lu\n", (unsigned long)IOCTL_PRIVCMD_HYPERCALL);
    SIZE(privcmd_hypercall);
    OFF(privcmd_hypercall, op);
    OFF(privcmd_hypercall, arg);
    return 0;
}
