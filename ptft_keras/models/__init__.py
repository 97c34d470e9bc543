"""ptft_keras.models"""
