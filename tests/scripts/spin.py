import time
def spin():
    while True:
        pass
print("spinning", flush=True)
spin()
