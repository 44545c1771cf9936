def vocab_parallel_cross_entropy(): pass
def vocab_parallel_linear_cross_entropy(): pass
