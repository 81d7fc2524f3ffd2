from optimizer.launch import main

main()
