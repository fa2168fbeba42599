U:%x[-10,0]%x[12,3]
U99:bias
B
