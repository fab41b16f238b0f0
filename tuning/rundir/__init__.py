"""The run directory: everything a search leaves on disk, and its safety.

``records`` writes and reads each file atomically (a kill never leaves half a file),
``folders`` holds a run's definition (run.json) and --overwrite, ``lock`` keeps one process
per run, ``resume`` saves each epoch and stops on Ctrl-C, ``repair`` checks a run a crash
left behind and repairs what can be repaired.
Nothing here trains a network: these modules sit just above the foundations.
"""
