rx_unit_test(xalloc)
rx_unit_test(log)
rx_unit_test(loop)
