package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newPlotCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "plot",
		Short: "Draw PNGs",
		RunE:  func(*cobra.Command, []string) error { return errors.New("not yet") },
	}
}
