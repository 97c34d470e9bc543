"""ptft_keras.training"""
