# in a terminal of its own, in the folder where affix is to keep its data (./var)
affix serve
