rx_unit_test(xalloc)
