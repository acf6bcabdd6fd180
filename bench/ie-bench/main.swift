import IENet
print("ie-bench")
