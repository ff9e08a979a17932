package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newMeshCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "mesh",
		Short: "Deliver messages in a mesh of nodes on mocknet and write a CSV",
		RunE:  func(*cobra.Command, []string) error { return errors.New("not yet") },
	}
}
