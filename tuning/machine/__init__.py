"""What this machine can do: numeric precision, speed and memory.

``precision`` chooses float32, float16 or bfloat16 (``timing`` measures them when the
hardware's answer is not obvious), ``cost`` prices a search in FLOPs against the machine's
measured rate, ``memory`` refuses a network that cannot fit before a trial is killed for it.
"""
