"""ptft_keras.tasks"""
