package shred_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/annals-dev/annals/pkg/shred"
)

func ExampleKeyring() {
	ctx := context.Background()
	file, _ := shred.NewKeyFile() // in production: a Secret mounted read-only
	kek, err := shred.ParseLocalKEK(string(file))
	if err != nil {
		panic(err)
	}
	keys := shred.NewKeyring(kek, shred.NewMemoryKeyStore(), shred.Options{})

	email, _ := keys.Encrypt(ctx, "user-1", "ada@example.com")
	fmt.Println(shred.IsEncrypted(email))
	clear, _ := keys.Decrypt(ctx, "user-1", email)
	fmt.Println(clear)

	_ = keys.Erase(ctx, "user-1")
	_, err = keys.Decrypt(ctx, "user-1", email)
	fmt.Println(errors.Is(err, shred.ErrErased))
	// Output:
	// true
	// ada@example.com
	// true
}
