// SPDX-License-Identifier: GPL-2.0-only
/*
 * uio_ivshmem: a UIO driver for QEMU's ivshmem PCI device (1af4:1110), with MSI-X.
 *
 * Part of shmlink (drivers/uio_ivshmem/README.md). GPL-2.0 because it uses the kernel's
 * GPL-only UIO symbols; the rest of shmlink is MIT.
 *
 * What user space gets, per PCI device:
 *   - one UIO device per MSI-X vector (ivshmem-doorbell): /dev/uioN for vector V, whose
 *     sysfs name is "uio_ivshmem" and version "vector V". read(2) of 4 bytes blocks until the
 *     vector fired since the last read and returns the interrupt count; poll(2) says POLLIN
 *     then. So each vector is its own file descriptor.
 *   - one UIO device without an interrupt (version "no interrupts") when the device has no
 *     MSI-X capability (ivshmem-plain) or MSI-X cannot be enabled: channels poll then.
 *   - every one of these UIO devices has the same two maps, in the order of the other ivshmem
 *     UIO drivers: map0 = BAR0 (the 256-byte register block: IntrMask, IntrStatus, IVPosition,
 *     Doorbell; 32-bit accesses only; the map's size is that rounded up to a page, because
 *     UIO maps whole pages), map1 = BAR2 (the shared memory, its size a power of two).
 *     mmap(/dev/uioN) at offset K * page size maps map K.
 *
 * The interrupt handler only counts: MSI-X needs no acknowledgement, and ivshmem's IntrStatus
 * register belongs to INTx, which this driver does not use.
 */
#include <linux/interrupt.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/uio_driver.h>

#define IVSHMEM_VENDOR_ID 0x1af4
#define IVSHMEM_DEVICE_ID 0x1110
#define IVSHMEM_MAX_VECTORS 64 /* more than any ivshmem user asks for (QEMU's own limit is 1024) */

struct ivshmem_vector {
	struct uio_info info;
	char version[24];
	bool registered;
};

struct ivshmem_dev {
	int nvectors;                     /* MSI-X vectors enabled, 0 without interrupts */
	int ninfos;                       /* UIO devices: max(nvectors, 1) */
	struct ivshmem_vector *vectors;   /* ninfos entries */
};

static irqreturn_t ivshmem_irq(int irq, struct uio_info *info)
{
	return IRQ_HANDLED; /* UIO counts it and wakes the readers of this vector's device */
}

static void ivshmem_unregister(struct ivshmem_dev *dev)
{
	int i;

	for (i = 0; i < dev->ninfos; i++) {
		if (dev->vectors[i].registered)
			uio_unregister_device(&dev->vectors[i].info);
		dev->vectors[i].registered = false;
	}
}

static int ivshmem_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct ivshmem_dev *dev;
	int err, i, want;

	dev = devm_kzalloc(&pdev->dev, sizeof(*dev), GFP_KERNEL);
	if (!dev)
		return -ENOMEM;

	err = pcim_enable_device(pdev);
	if (err) {
		dev_err(&pdev->dev, "uio_ivshmem: cannot enable the device: %d\n", err);
		return err;
	}
	/*
	 * The BARs are not claimed (pci_request_region) or ioremapped: user space maps them through
	 * UIO, and a claim would also make sysfs resource0/resource2 refuse mmap (iomem_is_exclusive),
	 * which tools that use sysfs still expect to work, as with uio_pci_generic.
	 */
	if (pci_resource_len(pdev, 0) == 0 || pci_resource_len(pdev, 2) == 0) {
		dev_err(&pdev->dev, "uio_ivshmem: BAR0 or BAR2 has size 0\n");
		return -ENODEV;
	}

	want = pci_msix_vec_count(pdev);
	if (want > IVSHMEM_MAX_VECTORS)
		want = IVSHMEM_MAX_VECTORS;
	if (want > 0) {
		pci_set_master(pdev);
		dev->nvectors = pci_alloc_irq_vectors(pdev, 1, want, PCI_IRQ_MSIX);
		if (dev->nvectors < 0) {
			dev_warn(&pdev->dev,
				 "uio_ivshmem: enabling %d MSI-X vectors failed (%d): no interrupts, user space polls\n",
				 want, dev->nvectors);
			dev->nvectors = 0;
		}
	}
	dev->ninfos = dev->nvectors > 0 ? dev->nvectors : 1;
	dev->vectors = devm_kcalloc(&pdev->dev, dev->ninfos, sizeof(*dev->vectors), GFP_KERNEL);
	if (!dev->vectors) {
		err = -ENOMEM;
		goto fail_vectors;
	}

	for (i = 0; i < dev->ninfos; i++) {
		struct ivshmem_vector *v = &dev->vectors[i];
		struct uio_info *info = &v->info;

		info->name = "uio_ivshmem";
		if (dev->nvectors > 0)
			snprintf(v->version, sizeof(v->version), "vector %d", i);
		else
			snprintf(v->version, sizeof(v->version), "no interrupts");
		info->version = v->version;
		info->mem[0].name = "registers";
		info->mem[0].addr = pci_resource_start(pdev, 0);
		/* UIO maps whole pages and refuses a map smaller than its mmap: BAR0's 256 bytes are
		 * offered as the page that holds them (as sysfs resource0 maps it). */
		info->mem[0].size = PAGE_ALIGN(pci_resource_len(pdev, 0));
		info->mem[0].memtype = UIO_MEM_PHYS;
		info->mem[1].name = "shmem";
		info->mem[1].addr = pci_resource_start(pdev, 2);
		info->mem[1].size = pci_resource_len(pdev, 2);
		info->mem[1].memtype = UIO_MEM_PHYS;
		if (dev->nvectors > 0) {
			info->irq = pci_irq_vector(pdev, i);
			info->irq_flags = 0;
			info->handler = ivshmem_irq;
		} else {
			info->irq = UIO_IRQ_NONE;
		}
		err = uio_register_device(&pdev->dev, info);
		if (err) {
			dev_err(&pdev->dev, "uio_ivshmem: registering the UIO device of %s failed: %d\n",
				v->version, err);
			goto fail_register;
		}
		v->registered = true;
	}
	pci_set_drvdata(pdev, dev);
	dev_info(&pdev->dev, "uio_ivshmem: %d MSI-X vectors, BAR2 %llu bytes\n", dev->nvectors,
		 (unsigned long long)pci_resource_len(pdev, 2));
	return 0;

fail_register:
	ivshmem_unregister(dev);
fail_vectors:
	if (dev->nvectors > 0)
		pci_free_irq_vectors(pdev);
	return err;
}

static void ivshmem_remove(struct pci_dev *pdev)
{
	struct ivshmem_dev *dev = pci_get_drvdata(pdev);

	ivshmem_unregister(dev);
	if (dev->nvectors > 0)
		pci_free_irq_vectors(pdev);
}

static const struct pci_device_id ivshmem_ids[] = {
	{ PCI_DEVICE(IVSHMEM_VENDOR_ID, IVSHMEM_DEVICE_ID) },
	{ 0 }
};
MODULE_DEVICE_TABLE(pci, ivshmem_ids);

static struct pci_driver ivshmem_driver = {
	.name = "uio_ivshmem",
	.id_table = ivshmem_ids,
	.probe = ivshmem_probe,
	.remove = ivshmem_remove,
};
module_pci_driver(ivshmem_driver);

MODULE_DESCRIPTION("UIO driver for QEMU's ivshmem device with one UIO device per MSI-X vector (shmlink)");
MODULE_LICENSE("GPL");
